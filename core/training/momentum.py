"""SGD whose momentum changes between epochs (the MobileNetV2 report's momentum decay).

Keras's SGD keeps its momentum as a Python float, which the compiled train step bakes in when it is
traced: setting `optimizer.momentum` afterwards changes nothing. Here the momentum is an optimizer
variable the step reads every time, so one traced step serves every epoch (and every fold, whose
reset restores the optimizer's variables), and a callback sets it at each epoch's start.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="transferlab")
class VariableMomentumSGD(keras.optimizers.SGD):
    """Plain (not Nesterov) momentum SGD reading its momentum from the variable `momentum_value`."""

    def build(self, variables: list) -> None:
        if self.built:
            return
        super().build(variables)
        self.momentum_value = self.add_variable((), initializer=keras.initializers.Constant(self.momentum),
                                                dtype="float32", name="momentum_value")

    def update_step(self, gradient, variable, learning_rate) -> None:
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum_value, variable.dtype)
        step = ops.multiply(gradient, learning_rate)
        self.assign(velocity, ops.subtract(ops.multiply(velocity, momentum), step))
        self.assign_add(variable, velocity)


def momentum_variable(optimizer: keras.optimizers.Optimizer) -> keras.Variable:
    """The momentum of a VariableMomentumSGD, inside the loss-scale wrapper mixed precision puts around it."""
    return getattr(optimizer, "inner_optimizer", optimizer).momentum_value


def set_momentum(optimizer: keras.optimizers.Optimizer, value: float) -> None:
    momentum_variable(optimizer).assign(value)


class MomentumSchedule(keras.callbacks.Callback):
    """Sets the momentum of each epoch from `momentum_at(epoch)` and logs it (the curves show it)."""

    def __init__(self, momentum_at: Callable[[int], float]):
        super().__init__()
        self.momentum_at = momentum_at

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        set_momentum(self.model.optimizer, self.momentum_at(epoch))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["momentum"] = float(momentum_variable(self.model.optimizer).numpy())
