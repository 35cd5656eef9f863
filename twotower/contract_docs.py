"""Render docs/data-contracts.md from the schema constants: ``python -m twotower.contract_docs``.

A test regenerates the text and compares it with the committed file, so the document
cannot drift from the code.
"""

from __future__ import annotations

from contracts import schemas
from contracts.outputs import ETL_OUTPUTS
from contracts.schemas import Table
from core.config import FeaturesConfig

HEADER = """# Data contracts

Generated from `contracts/schemas.py` (raw inputs) and `contracts/outputs.py` (ETL outputs) by `python -m twotower.contract_docs` (do not edit by hand;
`make docs` regenerates it and `tests/test_contracts.py` fails when it is stale).

Raw inputs are Parquet under `<data_root>/raw/<table>/ds=YYYY-MM-DD/`; ETL outputs under
`<data_root>/etl/<dataset>/ds=YYYY-MM-DD/` (`storage/layout.py`). The day lives in the
partition path, not in the files. Timestamps are UTC. A column marked optional may be
absent from a dataset; when present it must have the declared type.

User and item feature columns are declared in config (`[features]`): the tables below show
them for the default config (simulated data). ETL outputs carry encoded features under the
prefixes `u_cat_` / `i_cat_` (int64 vocabulary ids, 0 = out of vocabulary) and `u_num_` /
`i_num_` (float32, normalised), plus `u_hist` (recent clicked item ids, newest first).
"""


def render_table(t: Table) -> str:
    lines = [f"### `{t.name}`", "", t.doc, ""]
    if t.unique:
        lines += [f"Unique per partition: ({', '.join(t.unique)}).", ""]
    lines += ["| column | type | nullable | required | notes |", "| --- | --- | --- | --- | --- |"]
    for c in t.columns:
        lines.append(
            f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {'yes' if c.required else 'optional'} | {c.doc} |"
        )
    return "\n".join(lines) + "\n"


def render() -> str:
    raw = schemas.raw_tables(FeaturesConfig())
    parts = [HEADER, "## Raw inputs\n"]
    parts += [render_table(t) for t in raw.values()]
    parts.append("## ETL outputs\n")
    parts += [render_table(t) for t in ETL_OUTPUTS.values()]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
