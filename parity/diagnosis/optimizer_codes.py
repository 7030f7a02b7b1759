"""What the optimizer diagnosis can say: each finding code with its severity and meaning (plain data); what to
try for each is parity.diagnosis.fixes's table (its "optimizer" rows).

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
    new: bool = False  # added for optimizers (the rest are parity.diagnosis.mismatch's codes, used in the same sense)


CODES = {
    "sign_flip": Code('error', 'the update moves the parameters the opposite way (a velocity of the wrong sign)'),
    "scale_factor": Code('error', 'the steps are those of lr**2: the learning rate is applied twice'),
    "state_reset": Code('error', 'the state is rebuilt on every update instead of carried between calls', True),
    "no_update": Code('error', 'the update changes no parameter the caller holds: its step is computed and lost', True),
    "first_update_only": Code('error', 'only the first update changes the parameters', True),
    "shared_state": Code('error', 'one state array serves every parameter (where NumPy can broadcast it; where it '
                         'cannot, the update raises: layer_error)', True),
    "bias_correction": Code('error', 'Adam without its bias correction, or with half of it', True),
    "epsilon_placement": Code('error', "epsilon somewhere other than the book's sqrt(h) + eps", True),
    "hyperparameter": Code('error', 'the class uses a value other than the one you set (hard-coded); a warning where '
                           'it holds another than a default you left, which the Keras optimizer then mirrors', True),
    "update_mismatch": Code('error', "the parameters part from Keras's for a cause no replay reproduces"),
    "convention": Code('warning', "a known formula (the book's, or the Adam paper's) that Keras's differs from by a "
                       "convention no Keras argument changes, or an epsilon other than the run's"),
    "state_mismatch": Code('warning', 'the parameters agree at every step; the state the class exposes does not', True),
}
