"""The injection lifecycle: a motion model's modules are in the shared UNet for one sampling run of the patcher that
inserted them, and nowhere else (``InsertionRecord`` says why). ``apply_motion_model`` registers ``MotionInjection``
as a ComfyUI ``PatcherInjection`` (so loading, unloading and ``use_ejected`` keep working) and ``start_run``/``end_run``
as the patcher's ``ON_PRE_RUN``/``ON_CLEANUP`` callbacks."""

from __future__ import annotations

import logging

import torch

from ..module import MotionModelSet
from .placement import FrameGroupNorm, RunState, Slot, insert_position, mid_position, resnet_norm_holders

log = logging.getLogger(__name__)

KEY = "animapose"
RUN_KEY = f"{KEY}.run"


class InsertionRecord:
    """What one ModelPatcher inserted into the UNet it shares with its clones, and whether it is sampling now.

    The UNet is shared by every patcher made from one checkpoint, and ComfyUI ejects a patcher's injections from
    wherever it happens to be: ``ModelPatcher.__del__`` ejects a patcher that is still injected, so garbage collection
    of a dropped node output can run ``eject`` at any allocation, in any thread, while another patcher is iterating
    over the same UNet (``state_dict`` inside ``add_patches`` then fails with "OrderedDict mutated during
    iteration"), or while it samples with modules it found already inserted. So modules are inserted only between
    the ``ON_PRE_RUN`` and ``ON_CLEANUP`` callbacks of the patcher being sampled (``start_run``/``end_run``, the
    latter in ComfyUI's ``finally``): outside a run no patcher holds anything in the UNet, and a patcher that can be
    collected is never running. ComfyUI's own ``inject``/``eject`` calls (loading, unloading, ``use_ejected``) are
    honoured inside a run and do nothing outside it.

    ComfyUI's ``clone()`` copies both the injection list and the ``is_injected`` flag; the record is a patcher
    attachment and a clone starts with an empty one that is not running: a patcher only ever removes what it
    inserted itself, never what its parent (or a cached node's output) relies on."""

    def __init__(self):
        self.inserted: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []
        self.wrapped: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []
        self.joined: list[FrameGroupNorm] = []
        self.running = False

    @property
    def holds(self) -> bool:
        return bool(self.inserted or self.wrapped or self.joined)

    def on_model_patcher_clone(self) -> "InsertionRecord":
        return InsertionRecord()


class MotionInjection:
    """Inserts the modules of one MotionModelSet at their slots; ``eject`` undoes exactly what the same patcher
    inserted. The instance holds configuration only; what was inserted lives in each patcher's record."""

    def __init__(self, motion_set: MotionModelSet, slots: list[Slot], resnet_across_frames: bool, state: RunState,
                 key: str = KEY):
        self.motion_set = motion_set
        self.slots = slots
        self.resnet_across_frames = resnet_across_frames
        self.state = state
        self.key = key  # chained motion models each keep their own record

    def inject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(self.key)
        if record is None or not record.running or record.holds:
            return
        unet = model_patcher.model.diffusion_model
        for slot in self.slots:
            seq = unet.middle_block if slot.blocks == "middle_block" else getattr(unet, slot.blocks)[slot.index]
            module = self.motion_set.get_submodule(slot.module)
            if any(m is module for m in seq):
                # Another patcher of this UNet left it in place; a second copy would apply the motion twice.
                log.warning("AnimaPose: motion module %s is already in the UNet; not inserting it twice", slot.module)
                continue
            pos = mid_position(seq) if slot.blocks == "middle_block" else insert_position(seq)
            seq.insert(pos, module)
            record.inserted.append((seq, module))
        if self.resnet_across_frames:
            for seq in resnet_norm_holders(unet):
                norm = seq[0]
                if isinstance(norm, FrameGroupNorm):
                    if norm.state is not self.state and self.state not in norm.more_states:
                        norm.more_states.append(self.state)
                        record.joined.append(norm)
                    continue
                seq[0] = FrameGroupNorm(norm, self.state)
                record.wrapped.append((seq, norm))

    def eject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(self.key)
        if record is None:
            return
        for norm in record.joined:
            if self.state in norm.more_states:
                norm.more_states.remove(self.state)
        record.joined.clear()
        for seq, module in reversed(record.inserted):
            for i, m in enumerate(seq):
                if m is module:
                    del seq[i]
                    break
        record.inserted.clear()
        for seq, norm in reversed(record.wrapped):
            seq[0] = norm
        record.wrapped.clear()


def _records(model_patcher) -> list[tuple[str, InsertionRecord]]:
    return [(k, v) for k, v in model_patcher.attachments.items() if isinstance(v, InsertionRecord)]


def start_run(model_patcher) -> None:
    """``ON_PRE_RUN``: the patcher is about to sample (its weights are loaded); insert its motion modules."""
    for key, record in _records(model_patcher):
        record.running = True
        for injection in model_patcher.injections.get(key, []):
            injection.inject(model_patcher)


def end_run(model_patcher) -> None:
    """``ON_CLEANUP`` (ComfyUI calls it in a ``finally`` after every run, failed or interrupted ones included):
    remove what the run inserted, so the shared UNet is plain again before any other patcher can see it."""
    for key, record in _records(model_patcher):
        for injection in model_patcher.injections.get(key, []):
            injection.eject(model_patcher)
        record.running = False
