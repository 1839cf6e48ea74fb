# Sourced by scripts/serve and scripts/test: make .venv and install the pinned requirements,
# again only when requirements.txt or pyproject.toml changed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  # Editable, without dependencies: gives the `comfyone` command and the package metadata.
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$stamp" > .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
