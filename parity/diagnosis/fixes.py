"""What to try, per finding code and what is at fault: the one table every finding's `fix` comes from.

A code alone does not say what to change: a `batch_reduction` in a SoftmaxWithLoss is its softmax or its
division by the batch size, in an Affine its sums over the batch; a `sign_flip` in a Momentum is its
velocity, in a loss layer `t - y`. So the table is keyed by (code, subject), where the subject is the book
class at fault ("Affine", "Relu", ...), the optimizer at fault ("momentum", ..., or "optimizer" for any of
them), a phase with nothing to blame but itself ("fit"), or None for the code alone. `fix_for` tries the
subjects it is given in order, then the code alone. A finding that follows from another one gets no fix of
its own: `consequence_fix` points at the root's.
"""

from __future__ import annotations

__all__ = ["FIXES", "consequence_fix", "fix_for"]

_AFFINE = "dW = np.dot(x.T, dout), db = np.sum(dout, axis=0), dx = np.dot(dout, W.T)"
_SOFTMAX = ("the softmax must normalize each sample's row: np.exp(x - x.max(axis=-1, keepdims=True)) divided by "
            "its sum over axis=-1 (keepdims=True), not by the sum over the whole batch")
_VELOCITY = "subtract the step: v = momentum * v - lr * grad, then params[key] += v"

FIXES: dict[tuple[str, str | None], str] = {
    # What the comparison or a layer probe found, whatever the class.
    ("forward_mismatch", None): "compare your forward with the layer's definition (bias added? activation applied?)",
    ("gradient_mismatch", None): "re-derive this backward; compare it with central differences of your forward",
    ("update_mismatch", None): "the parameters drift apart after the optimizer's steps: check that every parameter "
                               "is updated, with its own gradient, on every step",
    ("sign_flip", None): "the gradient has the wrong sign: use dy = y - t (not t - y) and subtract lr * grad",
    ("scale_factor", None): "drop or add the constant factor named above (see its likely cause)",
    ("shape_mismatch", None): "return dW with W's shape (in, out): dW = x.T @ dout, db = dout.sum(axis=0)",
    ("mask_mismatch", None): "ReLU's backward must zero dout exactly where the forward input was <= 0: "
                             "np.where(mask, 0, dout)",
    ("batch_reduction", None): "a sum or mean over the batch axis differs from Keras's: Affine sums over the batch "
                               "(db = np.sum(dout, axis=0)), the loss divides by the batch size once, and a softmax "
                               "normalizes each row (axis=-1)",
    ("kink", None): "nothing to fix: the pre-activation is within rounding of 0, where either side may round across",
    ("zero_convention", None): "at exactly 0, TensorFlow's ReLU passes no gradient: use mask = x <= 0",
    ("input_mutation", None): "return new arrays (np.where(mask, 0, dout)) instead of writing into the ones you are "
                              "given",
    ("layer_error", None): "the method and line named above are where your layer failed: make it run and return an "
                           "array of the shape named",
    ("label_form", None): "set [model] loss to the cross-entropy whose labels your class takes (categorical_crossentropy: "
                          "one-hot, sparse_categorical_crossentropy: integers), or take both in forward, as the book's "
                          "SoftmaxWithLoss does (t.size == y.size: one-hot; else integer labels)",
    ("nan", None): "look for log(0), 0/0 or overflow in exp; the first sample named above is where it starts",
    ("convention", None): "nothing to fix for float32; Keras computes the cross-entropy from the logits, without + 1e-7",
    ("nan", "fit"): "lower --lr, or fit fewer --epochs: the Keras model diverged before any comparison",
    # Chapter 7: convolution and pooling.
    ("kernel_layout", None): "lay the kernel out as the book does: col_W = W.reshape(FN, -1).T, W of shape (FN, C, FH, FW)",
    ("col2im_overwrite", None): "in col2im, add each window back: img[:, :, y:y_max:stride, x:x_max:stride] += col[...]",
    ("hw_swapped", None): "compute out_h from H and FH, out_w from W and FW, and reshape(N, out_h, out_w, -1) in that order",
    ("bias_missing", None): "add the bias in forward: np.dot(col, col_W) + self.b",
    ("pool_routing", None): "send each window's dout to the cell np.argmax chose in forward: dmax[np.arange(n), arg_max] = dout",
    ("flatten_order", None): "flatten the input as it comes: x.reshape(x.shape[0], -1), and return dx.reshape(*original_x_shape)",
    ("resync", None): "nothing to fix: the steps before and after it are each compared from the same parameters and "
                      "optimizer state",
    ("drift", None): "nothing to fix: each step agrees from the same parameters and optimizer state; float64 keeps "
                     "the two trajectories closer for longer",
    ("unjudged", None): "keep the optimizer's state as the book does (v, h, or m and v: one array per parameter, in a "
                        "dict keyed like params or a list in its order) so the steps after it can be judged",
    ("pool_tie", None): "nothing to fix: which of two equal (or within rounding equal) cells takes a max-pooling window's "
                          "gradient is a convention (np.argmax takes the first)",
    # Chapter 6: Dropout and BatchNormalization (parity.diagnosis.regularization_traps).
    ("dropout_mask_returned", None): "return the input through the mask: x * self.mask (the mask itself is what backward "
                                     "keeps)",
    ("dropout_no_mask", None): "zero the gradient of the dropped units: dx = dout * self.mask (divided by 1 - ratio "
                               "where forward divides)",
    ("dropout_backward_scale", None): "apply in backward exactly what forward applied to the kept units: dx = dout * "
                                      "self.mask / (1 - ratio) after x * self.mask / (1 - ratio)",
    ("dropout_convention", None): "pick one convention: inverted (training x * mask / (1 - ratio), test x, as Keras) "
                                  "or the book's (training x * mask, test x * (1 - ratio))",
    ("keep_rate", None): "keep a unit where np.random.rand(*x.shape) > ratio: a uniform draw, compared with the ratio "
                         "(not randn, not the noise itself)",
    ("convention", "Dropout"): "nothing to fix: the book's Dropout is Keras's times (1 - ratio) in both modes, a "
                               "convention the next layer's weights absorb; to match Keras value for value, divide by "
                               "(1 - ratio) in training and return x in test mode",
    ("bn_variance_term", None): "add the gradient through the variance: dstd = -np.sum(dxn * xc / (std * std), "
                                "axis=0), dvar = 0.5 * dstd / std, dxc += (2.0 / batch_size) * xc * dvar",
    ("bn_unbiased_variance", None): "use the biased variance of the batch: var = np.mean(xc**2, axis=0) (np.var's "
                                    "default ddof=0)",
    ("bn_running_stats", None): "update both in training: running_mean = momentum * running_mean + (1 - momentum) * "
                                "mu, and the same for running_var with var",
    ("bn_batch_sum", None): "sum over the batch: dbeta = dout.sum(axis=0), dgamma = np.sum(xn * dout, axis=0)",
    ("bn_dx_summed", None): "return one row per sample: dx = dxc - dmu / batch_size, of x's shape; only dgamma and "
                            "dbeta sum over the batch",
    ("bn_epsilon_split", None): "use one epsilon in both modes: std = np.sqrt(var + 10e-7) in training and in test "
                                "mode",
    ("bn_layout", None): "normalize a 4-D input per activation as it comes: x.reshape(x.shape[0], -1), then "
                         "out.reshape(*self.input_shape) and dx.reshape(*self.input_shape)",
    ("bn_epsilon", None): "use the book's epsilon, 10e-7 (1e-6), or build the Keras side with yours",
    # Affine: the sums over the batch live here, the division by the batch size does not.
    ("forward_mismatch", "Affine"): "return np.dot(x, W) + b, with W of shape (in, out) as given (no transpose) and "
                                    "b added to every row",
    ("sign_flip", "Affine"): f"no minus sign in Affine's backward: {_AFFINE}",
    ("scale_factor", "Affine"): f"no constant factor in Affine's backward: {_AFFINE}",
    ("batch_reduction", "Affine"): "sum over the batch axis in Affine: db = np.sum(dout, axis=0), dW = np.dot(x.T, "
                                   "dout); never divide by the batch size here (the loss does it, once)",
    ("forward_mismatch", "Relu"): "return x where x > 0 and 0 elsewhere: np.where(x <= 0, 0, x), keeping the mask "
                                  "for backward",
    ("shape_mismatch", "Relu"): "return dx with dout's shape: np.where(self.mask, 0, dout)",
    ("forward_mismatch", "Sigmoid"): "return 1 / (1 + np.exp(-x)), keeping the output for backward",
    ("gradient_mismatch", "Sigmoid"): "the sigmoid's derivative is out * (1 - out): dx = dout * self.out * "
                                      "(1.0 - self.out)",
    ("shape_mismatch", "Sigmoid"): "return dx with dout's shape: dout * self.out * (1.0 - self.out)",
    # The losses: what Keras computes is the mean over the batch, and nothing else.
    ("forward_mismatch", "SoftmaxWithLoss"): f"the loss is the batch mean of -log softmax(x)[t]: {_SOFTMAX}; then "
                                             "average the label's -log probability over the batch",
    ("sign_flip", "SoftmaxWithLoss"): "dx = (y - t) / batch_size, with y the softmax (not t - y)",
    ("scale_factor", "SoftmaxWithLoss"): "dx = (y - t) / batch_size: one division by the batch size, no other factor",
    ("batch_reduction", "SoftmaxWithLoss"): f"in SoftmaxWithLoss, {_SOFTMAX}; and the loss and dx divide by the batch "
                                            "size exactly once: dx = (y - t) / batch_size",
    ("shape_mismatch", "SoftmaxWithLoss"): "return dx with the scores' shape (batch, classes): (y - t) / batch_size "
                                           "with t one-hot",
    ("forward_mismatch", "MeanSquaredError"): "Keras's mean squared error is np.mean((y - t)**2): over the batch and "
                                              "the outputs, with no 1/2",
    ("sign_flip", "MeanSquaredError"): "dy = 2 * (y - t) / y.size (not t - y)",
    ("scale_factor", "MeanSquaredError"): "dy = 2 * (y - t) / y.size: Keras's mean squared error has no 1/2, and "
                                          "divides by every entry once",
    ("batch_reduction", "MeanSquaredError"): "average over the whole batch once: loss = np.mean((y - t)**2), "
                                             "dy = 2 * (y - t) / y.size",
    ("shape_mismatch", "MeanSquaredError"): "return dy with y's shape (batch, outputs): 2 * (y - t) / y.size",
    # An optimizer class: what its update does to params (parity.diagnosis.optimizer names the cause by replay).
    ("sign_flip", "optimizer"): "subtract the step: params[key] -= lr * grads[key] (divided by np.sqrt(h) + 1e-7 "
                                "where the optimizer keeps h)",
    ("sign_flip", "momentum"): _VELOCITY,
    ("sign_flip", "nesterov"): _VELOCITY,
    ("scale_factor", "optimizer"): "multiply by lr once: the step is lr times the gradient (scaled by the state), "
                                   "not lr**2 times it",
    ("scale_factor", "momentum"): "multiply by lr once: the velocity already holds lr * grad, so add it as it is",
    ("scale_factor", "nesterov"): "multiply by lr once: the velocity already holds lr * grad, so add it as it is",
    ("no_update", "optimizer"): "change params[key] itself: params[key] -= step (`-+` makes an expression that "
                                "assigns nothing; `p = p - step` rebinds a local name; a copy of params is not the "
                                "caller's)",
    ("state_reset", "optimizer"): "create the state once, under `if self.h is None:`, and keep it on self",
    ("first_update_only", "optimizer"): "update every parameter on every call; only creating the state belongs "
                                        "under `if self.v is None:`",
    ("shared_state", "optimizer"): "keep one array per parameter: self.v[key] = np.zeros_like(val) for each key",
    ("bias_correction", "optimizer"): "lr_t = lr * np.sqrt(1 - beta2**iter) / (1 - beta1**iter), iter counted from 1",
    ("epsilon_placement", "optimizer"): "divide by (np.sqrt(h) + 1e-7): epsilon added to the root, inside the "
                                        "parentheses",
    ("hyperparameter", "optimizer"): "take the value from the constructor (lr=..., decay_rate=...) instead of "
                                     "hard-coding it",
    ("update_mismatch", "optimizer"): "step your update by hand twice on one parameter and compare with the book's "
                                      "formula",
    ("convention", "optimizer"): "nothing to fix: the convention is named, with its measured size",
    ("state_mismatch", "optimizer"): "nothing to fix for the parameters; keep the state as the book does to compare it",
    ("layer_error", "optimizer"): "make update(params, grads) run at the line named: the book's update changes each "
                                  "params[key] in place",
    ("shape_mismatch", "optimizer"): "update each params[key] with an array of its own shape (grads[key] has it)",
    ("input_mutation", "optimizer"): "compute into new arrays; leave grads[key] as it was given",
}


def fix_for(code: str, *subjects: str | None) -> str:
    """The fix for `code` found on the first of `subjects` the table knows, else for the code alone ("" if none)."""
    for subject in (*subjects, None):
        if (code, subject) in FIXES:
            return FIXES[(code, subject)]
    return ""


_FOUND = {"layer probe": "found by the layer probe", "probe": "found by the probe", "batch": "found by the batch probe",
          "stepping": "found while stepping", "fit": "found in the fit"}


def consequence_fix(code: str, phase: str | None, layer: str | None, fix: str) -> str:
    """A consequence's fix: the root it follows from (its code, class and phase), and that root's fix."""
    whose = f"{layer}'s {code}" if layer else f"the {code}"
    there = f", {_FOUND[phase]}" if phase in _FOUND else ""
    return f"follows from {whose}{there}; fix that: {fix}" if fix else f"follows from {whose}{there}"
