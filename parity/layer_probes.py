"""Each user layer alone against its Keras counterpart, at fixed points, in float64: which layer is wrong, and how.

For every class a user supplies: forward and backward at batch 1 and batch 4 (batch-axis bugs
show only at 4), at the activation's kink (ReLU at exactly 0), with checks that no input is
written into. Keras computes its side by TensorFlow autodiff. For a backward that disagrees, float64
central differences of the user's own forward referee: the backward is wrong (differences agree with
Keras), the forward follows another convention (they agree with the user), or a kink (one-sided
differences disagree).
"""

from __future__ import annotations

import numpy as np

from parity.compare import ERROR, WARNING, finding, one_line
from parity.diagnose import classify, scale_cause
from parity.keras_side import keras, tf
from parity.network import where_raised

__all__ = ["probe_layers"]

RTOL, ATOL = 1e-10, 1e-12  # both sides compute the same float64 formulas at O(1) values
FD_STEP, FD_RTOL, FD_ATOL = 1e-6, 1e-5, 1e-7  # central differences: truncation ~h**2, rounding ~eps/h


def _autodiff(fn, *arrays):
    """fn's value and its gradients w.r.t. each array, by TensorFlow autodiff (float64)."""
    tensors = [tf.constant(a, dtype=tf.float64) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        out = fn(*tensors)
    return out.numpy(), [None if g is None else g.numpy() for g in tape.gradient(out, tensors)]


def _numerical(f, x: np.ndarray, one_sided: int = 0) -> np.ndarray:
    """Central (or forward/backward, one_sided=+1/-1) differences of the scalar f at x."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + FD_STEP if one_sided >= 0 else old
        up = f()
        x[idx] = old - FD_STEP if one_sided <= 0 else old
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (FD_STEP * (2 if one_sided == 0 else 1))
    return grad


def _referee(f, x: np.ndarray, ours: np.ndarray, theirs: np.ndarray, bad: np.ndarray) -> str:
    """Three-way verdict from central differences of the user's forward at the disagreeing entries."""
    try:  # x is the very array f reads: perturbed in place, entry by entry, and restored
        central = _numerical(f, x)
        right, left = _numerical(f, x, +1), _numerical(f, x, -1)
    except Exception:
        return "central differences could not be taken (the forward raised)"
    near = lambda a, b: np.abs(a - b) <= FD_ATOL + FD_RTOL * np.abs(b)  # noqa: E731
    kinked = ~near(right, left)
    if kinked[bad].all():
        return "one-sided differences of your forward disagree there: a kink, where either answer may hold"
    bad = bad & ~kinked  # judged away from the kink: entries at it could go either way
    if near(central, theirs)[bad].all():
        return "central differences of your forward agree with Keras: your backward is wrong"
    if np.shape(ours) == np.shape(central) and near(central, ours)[bad].all():
        return "central differences of your forward agree with your backward: your forward follows another convention"
    return "central differences of your forward agree with neither side: forward and backward are both off"


class _Probe:
    """Collects the findings of one user class."""

    def __init__(self, name: str):
        self.name = name
        self.findings: list[dict] = []

    def add(self, code: str, severity: str, message: str, param: str | None = None):
        if not any(f["code"] == code and f.get("param") == param for f in self.findings):
            self.findings.append(finding(code, severity, f"{self.name}: {message}", layer=self.name, param=param))

    def run(self, call):
        """Call the user's code; an exception becomes a layer_error finding (returns None)."""
        try:
            return call()
        except Exception as exc:
            self.add("layer_error", ERROR, f"raised {type(exc).__name__}: {str(exc).strip()[:200]} ({where_raised(exc)})")
            return None

    def compare(self, what: str, ours, theirs, batch: int, referee=None, kink: np.ndarray | None = None):
        """Classify ours against Keras's; entries at a kink are judged separately (zero_convention)."""
        ours = np.asarray(ours, dtype=np.float64) if ours is not None else None
        if ours is None:
            return
        away = np.ones(np.shape(theirs), dtype=bool) if kink is None else ~kink
        if kink is not None and ours.shape == theirs.shape and kink.any():
            if not np.allclose(ours[kink], theirs[kink], rtol=RTOL, atol=ATOL):
                self.add("zero_convention", WARNING, f"{what} at exactly the kink is {one_line(ours[kink])} where Keras's is "
                         f"{one_line(theirs[kink])}", param=what)
        if ours.shape == theirs.shape:
            ours_away, theirs_away = ours[away], theirs[away]
        else:
            ours_away, theirs_away = ours, theirs
        verdict = classify(ours_away, theirs_away, RTOL, ATOL)
        if verdict is None:
            return
        code, detail = verdict
        severity = ERROR
        if code == "scale_factor":
            c = float(detail)
            detail = f"ours = {c:.6g} x Keras's; likely cause: {scale_cause(c, batch)}"
        if what in ("forward", "loss") and code not in ("nan", "shape_mismatch"):
            code, detail = "forward_mismatch", f"{what} differs from Keras's ({detail})"
        if referee is not None and code not in ("nan", "shape_mismatch") and ours.shape == theirs.shape:
            bad = ~(np.abs(ours - theirs) <= ATOL + RTOL * np.abs(theirs))
            detail += "; " + referee(bad)
        self.add(code, severity, f"{what} at batch size {batch}: {detail}", param=what)

    def forward_backward(self, make, x: np.ndarray, dout: np.ndarray, theirs_out: np.ndarray, batch: int):
        """Build the layer, run forward then backward on copies, watching for writes into them.

        Returns (layer, dx), or None when the user's code raised (already a layer_error finding).
        """
        layer = self.run(make)
        if layer is None:
            return None
        x_in, dout_in = x.copy(), dout.copy()
        out = self.run(lambda: layer.forward(x_in))
        self.check_unchanged("forward", {"x": x}, {"x": x_in})
        if out is None:
            return None
        self.compare("forward", out, theirs_out, batch)
        dx = self.run(lambda: layer.backward(dout_in))
        self.check_unchanged("backward", {"dout": dout}, {"dout": dout_in})
        return None if dx is None else (layer, dx)

    def check_unchanged(self, method: str, before: dict[str, np.ndarray], after: dict[str, np.ndarray]):
        for arg, value in before.items():
            if not np.array_equal(value, after[arg], equal_nan=True):
                self.add("input_mutation", WARNING, f"{method} wrote into its argument {arg}", param=arg)


def _probe_activation(cls, name: str, keras_fn, rng) -> list[dict]:
    probe = _Probe(name)
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0], [1e-3, -1e-3, 3.0, -3.0, 0.0]])  # with two exact kinks
    dout = rng.normal(size=x.shape)
    theirs_out = keras_fn(tf.constant(x)).numpy()
    _, (theirs_dx,) = _autodiff(lambda t: tf.reduce_sum(keras_fn(t) * dout), x)
    done = probe.forward_backward(cls, x, dout, theirs_out, 2)
    if done is None:
        return probe.findings
    dx = done[1]
    x_fd = x.copy()

    def referee(bad):
        return _referee(lambda: float(np.sum(cls().forward(x_fd.copy()) * dout)), x_fd, dx, theirs_dx, bad)
    probe.compare("dx", dx, theirs_dx, 2, referee, kink=(x == 0) if name == "Relu" else None)
    return probe.findings


def _dense_autodiff(dense, x: np.ndarray, dout: np.ndarray):
    """Keras Dense's output and its gradients w.r.t. input, kernel and bias, weighted by dout."""
    tx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        out = dense(tx)
        weighted = tf.reduce_sum(out * dout)
    dx, dW, db = tape.gradient(weighted, [tx, dense.kernel, dense.bias])
    return out.numpy(), {"dx": dx.numpy(), "dW": dW.numpy(), "db": db.numpy()}


def _probe_affine(cls, rng) -> list[dict]:
    probe = _Probe("Affine")
    W, b = rng.normal(size=(3, 2)), rng.normal(size=2)  # not square: a transposed dW shows as a shape
    dense = keras.layers.Dense(2, dtype="float64")
    dense.build((None, 3))
    dense.set_weights([W, b])
    runs = {}
    for batch in (1, 4):
        x, dout = rng.normal(size=(batch, 3)), rng.normal(size=(batch, 2))
        theirs_out, theirs = _dense_autodiff(dense, x, dout)
        done = probe.forward_backward(lambda: cls(W.copy(), b.copy()), x, dout, theirs_out, batch)
        if done is None:
            return probe.findings
        layer, dx = done
        runs[batch] = ({"dx": dx, "dW": getattr(layer, "dW", None), "db": getattr(layer, "db", None)}, theirs, x, dout)
    for what in ("dx", "dW", "db"):
        if runs[4][0][what] is None:
            probe.add("gradient_mismatch", ERROR, f"backward did not set {what}", param=what)
            continue
        at1 = classify(runs[1][0][what], runs[1][1][what], RTOL, ATOL)
        at4 = classify(runs[4][0][what], runs[4][1][what], RTOL, ATOL)
        if at1 is None and at4 is not None:  # right for one sample, wrong for a batch: the batch axis
            code, detail = at4
            if code == "scale_factor":
                detail = f"ours = {float(detail):.6g} x Keras's: {scale_cause(float(detail), 4)}"
            probe.add("batch_reduction", ERROR, f"{what} matches Keras at batch size 1 but not at 4 ({detail})",
                      param=what)
            continue
        ours, theirs, x, dout = runs[1][0][what], runs[1][1][what], runs[1][2], runs[1][3]
        target = {"dx": x, "dW": W, "db": b}[what]

        def referee(bad, what=what, target=target, x=x, dout=dout, ours=ours, theirs=theirs):
            def f():
                w_, b_, x_ = (target if what == "dW" else W), (target if what == "db" else b), (target if what == "dx" else x)
                return float(np.sum(cls(w_.copy(), b_.copy()).forward(x_.copy()) * dout))
            return _referee(f, target, ours, theirs, bad)
        probe.compare(what, ours, theirs, 1, referee)
    return probe.findings


def _probe_loss(cls, name: str, rng) -> list[dict]:
    """A loss layer: forward(y, t) -> scalar, backward(dout=1) -> dL/dy, against Keras's loss."""
    probe = _Probe(name)
    for batch in (1, 4):
        if name == "MeanSquaredError":
            y, t = rng.normal(size=(batch, 1)), rng.normal(size=(batch, 1))  # one output: a 1/2 shows at batch 1
            ours_t, theirs_t = t, t
            keras_loss = keras.losses.MeanSquaredError(dtype="float64")
        else:
            y, labels = rng.normal(scale=2, size=(batch, 3)), rng.integers(0, 3, size=batch)
            ours_t, theirs_t = labels, labels.reshape(-1, 1).astype(np.float64)
            # What Keras computes for a softmax output inside fit: the cross-entropy of its logits.
            keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
        theirs_loss, (theirs_dy, _) = _autodiff(lambda a, b: keras_loss(b, a), y, theirs_t)
        layer = probe.run(cls)
        if layer is None:
            return probe.findings
        y_in, t_in = y.copy(), np.array(ours_t, copy=True)
        loss = probe.run(lambda: layer.forward(y_in, t_in))
        probe.check_unchanged("forward", {"y": y, "t": ours_t}, {"y": y_in, "t": t_in})
        if loss is None:
            return probe.findings
        dy = probe.run(lambda: layer.backward(1))
        if dy is None:
            return probe.findings  # it raised: a layer_error, and nothing to compare
        if name == "SoftmaxWithLoss" and not np.isclose(loss, theirs_loss, rtol=RTOL, atol=ATOL):
            probs = tf.nn.softmax(tf.constant(y)).numpy()
            book = -np.mean(np.log(probs[np.arange(batch), labels] + 1e-7))
            if np.isclose(loss, book, rtol=1e-12, atol=0):  # explains the difference; Keras's side stays Keras's
                probe.add("convention", WARNING, f"the loss is the book's -log(y + 1e-7): {float(loss):.12g} where Keras "
                          f"computes {float(theirs_loss):.12g} from the logits; within float32 tolerance, visible in "
                          "float64", param="loss")
                loss = theirs_loss  # named above; the gradient is still compared below
        probe.compare("loss", loss, theirs_loss, batch)
        y_fd = y.copy()

        def referee(bad, y_fd=y_fd, t=ours_t, dy=dy, theirs_dy=theirs_dy):
            return _referee(lambda: float(cls().forward(y_fd.copy(), np.array(t, copy=True))), y_fd, dy, theirs_dy, bad)
        if batch == 4 and classify(dy, theirs_dy, RTOL, ATOL) is not None and not any(
                f.get("param") == "dy" for f in probe.findings):
            code, detail = classify(dy, theirs_dy, RTOL, ATOL)  # right for one sample, wrong for a batch
            if code == "scale_factor":
                detail = f"ours = {float(detail):.6g} x Keras's: {scale_cause(float(detail), 4)}"
            probe.add("batch_reduction", ERROR, f"dy matches Keras at batch size 1 but not at 4 ({detail})", param="dy")
            continue
        probe.compare("dy", dy, theirs_dy, batch, referee)
    return probe.findings


def probe_layers(kit: dict, user_names: list[str]) -> list[dict]:
    """Findings for each of the user's classes (names as in the reference kit)."""
    rng = np.random.default_rng(20240601)
    out = []
    for name in user_names:
        cls = kit[name]
        if name == "Relu":
            out += _probe_activation(cls, "Relu", keras.activations.relu, rng)
        elif name == "Sigmoid":
            out += _probe_activation(cls, "Sigmoid", keras.activations.sigmoid, rng)
        elif name == "Affine":
            out += _probe_affine(cls, rng)
        else:
            out += _probe_loss(cls, name, rng)
    for f in out:
        f["phase"] = "layer probe"
    return out
