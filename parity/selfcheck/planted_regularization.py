"""Planted bugs of the book's chapter 6 for `parity selftest`: each Dropout or BatchNormalization class written as a
learner would write it, with the one mistake the survey of learners' classes found, and the code it must earn."""

from __future__ import annotations

import numpy as np

from parity.book import regularization as ref

__all__ = ["PLANTED_REGULARIZATION", "IMAGE_CODES", "DropoutWithoutTrainFlag"]

IMAGE_CODES = ("bn_layout",)  # their evidence is an (N, C, H, W) input: probed where the run has convolutions


class DropoutRandnMask(ref.Dropout):
    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.randn(*x.shape) > self.dropout_ratio  # keeps 38%, not 70%, at ratio 0.3
        return x * self.mask / (1.0 - self.dropout_ratio)


class DropoutNoiseMask(ref.Dropout):
    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.rand(*x.shape)  # uniform noise, no threshold
        return x * self.mask / (1.0 - self.dropout_ratio)


class DropoutReturnsMask(ref.Dropout):
    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.rand(*x.shape) > self.dropout_ratio
        return self.mask  # where x * self.mask / (1 - ratio) belongs


class DropoutBackwardWithoutMask(ref.Dropout):
    def backward(self, dout):
        return dout / (1.0 - self.dropout_ratio)


class DropoutBackwardUnscaled(ref.Dropout):
    def backward(self, dout):
        return dout * self.mask  # forward divided by (1 - ratio); backward forgets it


class DropoutNeitherConvention(ref.BookDropout):
    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x  # neither scaled in training nor in test mode


class DropoutDefaultRng(ref.Dropout):
    """Correct, with a generator's draw: driven as the module-level one is."""

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.default_rng().random(x.shape) > self.dropout_ratio
        return x * self.mask / (1.0 - self.dropout_ratio)


class DropoutBinomial(ref.Dropout):
    """Correct, with a binomial draw of the kept units."""

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.binomial(1, 1.0 - self.dropout_ratio, size=x.shape)
        return x * self.mask / (1.0 - self.dropout_ratio)


class DropoutKeepsBelow(ref.Dropout):
    """Correct, keeping where the draw is small: driven with the drawn values swapped."""

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.uniform(0.0, 1.0, x.shape) < 1.0 - self.dropout_ratio
        return x * self.mask / (1.0 - self.dropout_ratio)


class DropoutWithoutTrainFlag:
    """No train flag: the harness cannot tell it its mode (refused before any work)."""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio, self.mask = dropout_ratio, None

    def forward(self, x):
        self.mask = np.random.rand(*x.shape) > self.dropout_ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class BatchNormWithoutVarianceTerm(ref.BatchNormalization):
    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta, self.dgamma = dout.sum(axis=0), np.sum(self.xn * dout, axis=0)
        dxc = self.gamma * dout / self.std  # the gradient through the variance is missing
        return (dxc - dxc.mean(axis=0)).reshape(*self.input_shape)


class BatchNormUnbiased(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        if not train_flg:
            return super().forward(x, train_flg)
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean, self.running_var = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        mu = x.mean(axis=0)
        self.xc = x - mu
        var = self.xc.var(axis=0, ddof=1)  # ddof=1: over n - 1
        self.std = np.sqrt(var + ref.BN_EPSILON)
        self.xn, self.batch_size = self.xc / self.std, x.shape[0]
        self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
        self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        return (self.gamma * self.xn + self.beta).reshape(*self.input_shape)


class BatchNormRunningNeverUpdated(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        before = None if self.running_mean is None else (self.running_mean.copy(), self.running_var.copy())
        out = super().forward(x, train_flg)
        if train_flg:  # computed, never assigned
            self.running_mean, self.running_var = before or (np.zeros_like(self.xc[0]), np.zeros_like(self.xc[0]))
        return out


class BatchNormMomentumInverted(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        self.momentum = 1 - self.momentum if train_flg else self.momentum
        try:
            return super().forward(x, train_flg)  # running = (1 - m) * running + m * batch
        finally:
            self.momentum = 1 - self.momentum if train_flg else self.momentum


class BatchNormDgammaPerSample(ref.BatchNormalization):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dgamma = self.xn * dout.reshape(dout.shape[0], -1)  # not summed over the batch
        return dx


class BatchNormDxSummed(ref.BatchNormalization):
    def backward(self, dout):
        return super().backward(dout).sum(axis=0)  # one row for the whole batch


class BatchNormEpsilonSplit(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        if train_flg:
            return super().forward(x, train_flg)
        flat = x.reshape(x.shape[0], -1)
        xn = (flat - self.running_mean) / np.sqrt(self.running_var + 1e-7)  # 1e-7 here, 10e-7 in training
        return (self.gamma * xn + self.beta).reshape(*x.shape)


class BatchNormChannelsLast(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        if x.ndim != 4:
            return super().forward(x, train_flg)
        out = super().forward(x.transpose(0, 2, 3, 1), train_flg)  # normalized channels-last...
        return out.reshape(x.shape)  # ...and read back as if it were (N, C, H, W)

    def backward(self, dout):
        if dout.ndim != 4:
            return super().backward(dout)
        return super().backward(dout.reshape(self.input_shape)).reshape(dout.shape)


# (case, kit, the code that must be found (an error, or "" for a correct kit), what was planted)
PLANTED_REGULARIZATION = [
    ("randn mask", {"Dropout": DropoutRandnMask}, "keep_rate", "mask = randn(*x.shape) > ratio: keeps 38%"),
    ("noise mask", {"Dropout": DropoutNoiseMask}, "keep_rate", "mask = rand(*x.shape), no threshold"),
    ("mask returned", {"Dropout": DropoutReturnsMask}, "dropout_mask_returned", "forward returns self.mask"),
    ("backward without the mask", {"Dropout": DropoutBackwardWithoutMask}, "dropout_no_mask", "dx = dout / (1 - r)"),
    ("backward unscaled", {"Dropout": DropoutBackwardUnscaled}, "dropout_backward_scale",
     "forward / (1 - r), backward dout * mask"),
    ("neither convention", {"Dropout": DropoutNeitherConvention}, "dropout_convention",
     "training x * mask, test x"),
    ("BN without the variance term", {"BatchNormalization": BatchNormWithoutVarianceTerm}, "bn_variance_term",
     "dx = (dxn - mean(dxn)) / std"),
    ("BN unbiased variance", {"BatchNormalization": BatchNormUnbiased}, "bn_unbiased_variance", "var with ddof=1"),
    ("BN running statistics never updated", {"BatchNormalization": BatchNormRunningNeverUpdated}, "bn_running_stats",
     "running_mean and running_var left at their start"),
    ("BN momentum inverted", {"BatchNormalization": BatchNormMomentumInverted}, "bn_running_stats",
     "running = (1 - m) * running + m * batch"),
    ("BN dgamma per sample", {"BatchNormalization": BatchNormDgammaPerSample}, "bn_batch_sum",
     "dgamma = xn * dout, not summed"),
    ("BN dx summed", {"BatchNormalization": BatchNormDxSummed}, "bn_dx_summed", "dx.sum(axis=0)"),
    ("BN 4-D layout scrambled", {"BatchNormalization": BatchNormChannelsLast}, "bn_layout",
     "x.transpose(0, 2, 3, 1) before the reshape"),
    ("BN epsilon split", {"BatchNormalization": BatchNormEpsilonSplit}, "bn_epsilon_split", "1e-7 at test, 1e-6 in training"),
    ("book's Dropout (correct)", {"Dropout": ref.BookDropout}, "", "(1 - r) at test: convention warning only"),
    ("generator draw (correct)", {"Dropout": DropoutDefaultRng}, "",
     "default_rng().random(shape) > r"),
    ("binomial draw (correct)", {"Dropout": DropoutBinomial}, "", "binomial(1, 1 - r, size)"),
    ("reversed comparison (correct)", {"Dropout": DropoutKeepsBelow}, "", "uniform(0, 1, shape) < 1 - r"),
    ("reference chapter-6 layers (correct)", {"Dropout": ref.Dropout, "BatchNormalization": ref.BatchNormalization},
     "", "no finding of severity error"),
]
