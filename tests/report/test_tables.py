"""The long-form gradients table: by default the rows that do not pass and the largest differences, whatever the chunking."""

import pandas as pd

from parity.settings.config import WORST_GRADIENTS, resolve
from parity.prepare import prepare
from parity.book.layers import Relu
from parity.report.writer import ReportWriter
from parity.compare.run import compare_numpy
from parity.keras_side.reference import keras_reference

KEYS = ["phase", "sample", "step", "layer", "param", "index"]


class ReluWithoutMask(Relu):
    def backward(self, dout):
        return dout


def test_every_entry_of_a_failing_row_is_kept_and_chunking_changes_nothing(tmp_path):
    prepared = prepare(resolve({"dtype": "float64", "epochs": 1, "samples": 100, "train": 40}))
    reference = keras_reference(prepared)
    tables = {}
    for chunk in (None, 17):
        folder = tmp_path / f"chunk{chunk}"
        folder.mkdir()
        writer = ReportWriter(folder, prepared.data, prepared.config, prepared.spec, "csv", plots=False)
        result = compare_numpy(prepared, reference, {"Relu": ReluWithoutMask}, chunk=chunk, on_chunk=writer.add_probe_chunk)
        writer.finish(result)
        tables[chunk] = pd.read_csv(folder / "gradients.csv")
    whole = tables[None].sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(tables[17].sort_values(KEYS).reset_index(drop=True), whole)

    samples = pd.read_csv(tmp_path / "chunkNone" / "samples.csv")
    failing, passing = samples.loc[samples["verdict"] != "pass", "sample"], samples.loc[samples["verdict"] == "pass", "sample"]
    assert len(failing) and len(passing)  # both kinds of rows, or the test proves little
    probe = whole[whole["phase"] == "probe"]
    per_sample = probe.groupby("sample").size()
    assert (per_sample[failing] == 8).all()  # dW1 (2) + db1 (2) + dW2 (2) + db2 (1) + dx (1): every entry
    kept_passing = probe[probe["sample"].isin(passing)]
    assert (kept_passing.groupby(["layer", "param"]).size() <= WORST_GRADIENTS).all()


def test_all_gradients_writes_every_entry(tmp_path):
    prepared = prepare(resolve({"dtype": "float64", "epochs": 1, "samples": 50, "train": 20, "all_gradients": True}))
    writer = ReportWriter(tmp_path, prepared.data, prepared.config, prepared.spec, "csv", plots=False)
    result = compare_numpy(prepared, keras_reference(prepared), chunk=16, on_chunk=writer.add_probe_chunk)
    writer.finish(result)
    table = pd.read_csv(tmp_path / "gradients.csv")
    # a batch of 10 holds dW1 (2) + db1 (2) + dW2 (2) + db2 (1) entries, and dx for each of its 10 samples
    assert table.groupby("phase").size().to_dict() == {"probe": 50 * 8, "batch": 2 * (7 + 10), "stepping": 20 * 8}
