"""What the optimizer diagnosis can say: each finding code with its severity, meaning and fix (plain data).

parity.diagnosis.optimizer names these; the driver (parity.user_code.optimizer_driver) adds layer_error,
shape_mismatch and input_mutation.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Code", "CODES"]


@dataclass(frozen=True)
class Code:
    severity: str  # error | warning ("hyperparameter" is a warning while the trajectories still agree)
    meaning: str
    fix: str
    new: bool = False  # added for optimizers (the rest are parity.diagnosis.mismatch's codes, used in the same sense)


CODES = {
    "sign_flip": Code("error", "the update moves the parameters the opposite way (a velocity of the wrong sign)",
                      "subtract the step: v = momentum * v - lr * grad, then params[key] += v"),
    "scale_factor": Code("error", "the steps are those of lr**2: the learning rate is applied twice",
                         "multiply by lr once: the velocity already holds lr * grad, so add it as it is"),
    "state_reset": Code("error", "the state is rebuilt on every update instead of carried between calls",
                        "create the state once, under `if self.h is None:`, and keep it on self", True),
    "no_update": Code("error", "the update changes no parameter the caller holds: its step is computed and lost",
                      "change params[key] itself: params[key] -= step (`-+` makes an expression that assigns "
                      "nothing; `p = p - step` rebinds a local name; a copy of params is not the caller's)", True),
    "first_update_only": Code("error", "only the first update changes the parameters",
                              "update every parameter on every call; only creating the state belongs under "
                              "`if self.v is None:`", True),
    "shared_state": Code("error", "one state array serves every parameter (where NumPy can broadcast it; where it "
                         "cannot, the update raises: layer_error)",
                         "keep one array per parameter: self.v[key] = np.zeros_like(val) for each key", True),
    "bias_correction": Code("error", "Adam without its bias correction, or with half of it",
                            "lr_t = lr * np.sqrt(1 - beta2**iter) / (1 - beta1**iter), iter counted from 1", True),
    "epsilon_placement": Code("error", "epsilon somewhere other than the book's sqrt(h) + eps",
                              "divide by (np.sqrt(h) + 1e-7): epsilon added to the root, inside the parentheses",
                              True),
    "hyperparameter": Code("error", "the class uses a value other than the one you set (hard-coded); a warning "
                           "where it holds another than a default you left, which the Keras optimizer then mirrors",
                           "take the value from the constructor (lr=..., decay_rate=...) instead of hard-coding it",
                           True),
    "update_mismatch": Code("error", "the parameters part from Keras's for a cause no replay reproduces",
                            "step your update by hand twice on one parameter and compare with the book's formula"),
    "convention": Code("warning", "a known formula (the book's, or the Adam paper's) that Keras's differs from by a "
                       "convention no Keras argument changes, or an epsilon other than the run's", "nothing to fix: "
                       "the convention is named, with its measured size"),
    "state_mismatch": Code("warning", "the parameters agree at every step; the state the class exposes does not",
                           "nothing to fix for the parameters; keep the state as the book does to compare it", True),
}
