"""Small questions every feature asks of tensors and of the nested values that carry them."""

from __future__ import annotations

from typing import Any

import torch


def is_float(t: Any) -> bool:
    """A floating-point tensor (activations, losses and gradients; not labels or masks)."""
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def stack_floats(values: Any, device: torch.device | None = None) -> torch.Tensor:
    """Scalar tensors (0-dim or one element) as one float32 vector on `device` (the first one's by default),
    ready for a single read to the host. One `torch.stack` when they are all 0-dim on one device (it promotes
    mixed dtypes); else each is converted only when its dtype, shape or device differs."""
    values = list(values)
    first = values[0].device
    device = first if device is None else device
    if device == first:
        try:
            out = torch.stack(values)
        except RuntimeError:  # a one-element 1-D value, or another device: converted one by one
            pass
        else:
            if out.dim() == 1:
                out = out if out.dtype == torch.float32 else out.float()
                return out.detach() if out.requires_grad else out
    return torch.stack(
        [
            v
            if v.dtype == torch.float32 and not v.dim() and v.device == device and not v.requires_grad
            else v.detach().reshape(()).float().to(device)
            for v in values
        ]
    )


def detached(t: torch.Tensor) -> torch.Tensor:
    """`t` without autograd history: itself when it has none (`.detach()` is a dispatch even then; these
    run on every loss call)."""
    return t.detach() if t.requires_grad else t


def on_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`: itself when it is there already (`.to` is a dispatch even then, and these run per
    queued call)."""
    return t if t.device == device else t.to(device)


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in `obj`, looking inside tuples, lists and dicts (a module's output or a batch)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = first_tensor(o)
            if t is not None:
                return t
    if isinstance(obj, dict):
        for o in obj.values():
            t = first_tensor(o)
            if t is not None:
                return t
    return None


def storage_key(t: torch.Tensor) -> Any:
    """What identifies the memory a strided tensor lives in, shared by all its views: the storage's data
    pointer once allocated (the same across storage objects), else the storage object's identity (meta and
    empty storages). None for tensors without a storage Python can see (sparse layouts, some subclasses)."""
    try:
        st = t.untyped_storage()
    except Exception:
        return None
    ptr = st.data_ptr() if t.device.type != "meta" else 0
    return ptr if ptr else ("cdata", st._cdata)
