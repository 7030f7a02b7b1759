"""The CSV tables go from their columns straight to Arrow, without pandas: the same schema and the same bytes as
through a pandas DataFrame (what the tables were before), on runs whose rows hold NaN, raised errors, class labels,
many categories and sigmoid units."""

import io

import pyarrow as pa
import pyarrow.csv as pc
import pytest

from parity.report.tables import arrow, frame, gradient_columns, samples_columns, steps_columns
from parity.selfcheck.selftest import PLANTED


def _csv(table: pa.Table) -> bytes:
    out = io.BytesIO()
    writer = pc.CSVWriter(out, table.schema)
    writer.write_table(table)
    writer.close()
    return out.getvalue()


CASES = [({"dtype": dtype}, case.kit) for case in PLANTED for dtype in ("float32", "float64")]
CASES += [({"scenario": "softmax"}, None), ({"scenario": "deep"}, None), ({"scenario": "sigmoid"}, None)]


@pytest.mark.parametrize("settings, kit", CASES, ids=[f"{s}-{k and next(iter(k.values())).__name__}" for s, k in CASES])
def test_columns_straight_to_arrow_write_the_csv_bytes_pandas_wrote(cached_run, settings, kit):
    result = cached_run(settings, kit)
    data, n = result.data, result.config.train
    tables = {"samples": samples_columns(result.probe, data.x[result.probe.rows], data.y[result.probe.rows],
                                         data.split(result.probe.rows), classes=result.classifies),
              "steps": steps_columns(result.stepping, data.x[:n], data.y[:n], result.fitted),
              "gradients": gradient_columns(*(p for p in (result.probe, result.batch, result.stepping) if p))}
    for name, cols in tables.items():
        direct, through_pandas = arrow(cols), pa.Table.from_pandas(frame(cols), preserve_index=False)
        assert direct.schema.equals(through_pandas.schema, check_metadata=False), name
        assert _csv(direct) == _csv(through_pandas), name
