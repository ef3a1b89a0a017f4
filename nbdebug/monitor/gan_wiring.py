"""`optimizer-wrong-network`: one GAN network stepped with an optimizer that holds the other's parameters.

Two real reports: SRGAN-PyTorch#85 passed `g_optimizer` where D's optimizer belonged, so the D phase
stepped G and D never trained; MAE_GAN#1 built one optimizer over the whole model (generator and
discriminator) and stepped both losses with it, so D's loss trained the generator too. Both are programs
that run; `watch_gan` names them as a finding and keeps watching what it can (the network whose optimizer
is its own), instead of stopping the user's loop. Arguments passed in the wrong order (each optimizer
holding only the other network's parameters) stay an `NbdebugError`: that is a mistake in the call to
`watch_gan`, not in the program. Parameters D and G share (a common embedding) belong to both."""

from __future__ import annotations

from typing import Any

from torch import nn

from .._core.errors import NbdebugError
from .._core.findings import Finding


def _held(opt: Any) -> list[Any]:
    return [p for g in opt.param_groups for p in g["params"]]


def d_optimizer_usable(D: nn.Module, opt_d: Any, opt_g: Any) -> bool:
    """Whether `opt_d` can be D's monitor's optimizer: its own object, holding some of D's parameters."""
    mine = {id(p) for p in D.parameters()}
    return opt_d is not opt_g and any(id(p) in mine for p in _held(opt_d))


def wrong_network_findings(
    D: nn.Module, G: nn.Module, opt_d: Any, opt_g: Any, names: tuple[str, str, str, str]
) -> list[Finding]:
    """One finding per optimizer that steps the other network: it holds none of its own network's
    parameters, or it holds the other network's (not shared) parameters. Raises `NbdebugError` when the
    two optimizers are simply passed in the wrong order."""
    d_ids, g_ids = {id(p) for p in D.parameters()}, {id(p) for p in G.parameters()}
    d_only, g_only = d_ids - g_ids, g_ids - d_ids
    held_d, held_g = _held(opt_d), _held(opt_g)
    own = (sum(id(p) in d_ids for p in held_d), sum(id(p) in g_ids for p in held_g))
    if opt_d is not opt_g and held_d and held_g and own == (0, 0):
        if any(id(p) in g_ids for p in held_d) and any(id(p) in d_ids for p in held_g):
            raise NbdebugError(
                f"d_optimizer holds {len(held_d)} parameters, none of them the discriminator's "
                f"({type(D).__name__}), and g_optimizer only the discriminator's (D and G's optimizers swapped?): "
                "pass them in the order watch_gan(D, G, d_optimizer, g_optimizer)"
            )
    out: list[Finding] = []
    same = opt_d is opt_g
    for i, (held, mine_all, theirs) in enumerate(((held_d, d_ids, g_only), (held_g, g_ids, d_only))):
        if same and i == 1:
            break  # one optimizer passed twice: one finding tells it
        if not held:
            continue  # an empty optimizer: frozen-by-accident tells it
        net, other = names[i], names[1 - i]
        opt_name = names[2 + i]
        own_n = sum(id(p) in mine_all for p in held)
        other_n = sum(id(p) in theirs for p in held)
        if own_n and not other_n:
            continue
        both = f"{names[2]} and {names[3]} are the same optimizer, and it" if same else opt_name
        if own_n == 0:
            msg = (
                f"{both} holds {len(held)} parameter tensors, none of them {net}'s"
                + (f" ({other_n} are {other}'s)" if other_n else "")
                + f": {opt_name}.step() in {net}'s phase updates {other if other_n else 'other tensors'} "
                f"with the gradients it holds, and {net} never trains"
            )
        else:
            msg = (
                f"{both} holds {own_n} of {net}'s parameter tensors and {other_n} of {other}'s: "
                f"{net}'s loss also steps {other}, "
                + (
                    f"training {other} to make its output easy to detect"
                    if i == 0
                    else f"training {other} to help {net} instead of judging it"
                )
            )
        out.append(
            Finding(
                "optimizer-wrong-network",
                "error",
                msg,
                f"one optimizer per network: {names[2]} = torch.optim.Adam({names[0]}.parameters(), ...) "
                f"stepped after {names[0]}'s loss (on {names[1]}'s output .detach()ed), {names[3]} = "
                f"torch.optim.Adam({names[1]}.parameters(), ...) after {names[1]}'s",
                opt_name,
                {"network": net, "own": own_n, "other": other_n, "held": len(held), "same": same},
            )
        )
    return out
