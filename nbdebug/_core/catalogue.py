"""The findings catalogue: every code nbdebug can raise, what it means, its threshold, the public source
of that threshold and its nature, so that a user reading a finding can judge it and a developer adding a
check does not invent a second code for the same bug. The README's table is generated from it. The
training monitor's codes are here, the other features' in `catalogue_more.py`; `CATALOGUE` holds both.

Nature: an *event* happened (a NaN, a leaked gradient, a step in eval mode, a blow-up): later good news
does not undo it. A *state* holds while its evidence does (the loss is flat, the units are dead): a live
monitor withdraws it when later evidence contradicts it, and keeps the withdrawal in its history."""

from __future__ import annotations

from .catalogue_more import MORE
from .codeinfo import NATURES, CodeInfo, entry

__all__ = ["CATALOGUE", "NATURES", "CodeInfo", "nature"]


def nature(code: str) -> str:
    """ "event" or "state" (see the module docstring); codes outside the catalogue are events."""
    info = CATALOGUE.get(code)
    return info.nature if info is not None else "event"


CATALOGUE: dict[str, CodeInfo] = dict(
    [
        entry(
            "initial-loss",
            "first loss far from chance level",
            "|loss - expected| > 0.5 * expected + 0.1, expected = ln(C) for C-class cross-entropy, ln 2 for BCE; "
            "a warning at >= 3x expected or below it, advice (info) in between (a deep network's default init, a "
            "fresh head on pretrained features)",
            "CS231n 'Loss sanity checking': -ln(0.1) = 2.302 for 10 classes; Karpathy, 'Building makemore Part "
            "3': a first loss of 27 against ln 27 = 3.3 is the hockey-stick init that wastes the first steps",
        ),
        entry(
            "cannot-overfit",
            "a tiny subset is not fit to near-zero loss",
            "loss above the target (default 0.05, or 5% of the initial loss) when the budget runs out",
            "CS231n 'Overfit a tiny subset of data' (20 examples, zero cost)",
        ),
        entry(
            "grad-not-zeroed",
            "gradients carried over from one optimizer step into the next",
            ".grad at a backward's start equals the .grad the previous optimizer.step() used",
            "PyTorch docs, torch.optim.Optimizer.zero_grad: gradients accumulate in .grad across backward() calls",
        ),
        entry(
            "softmax-before-ce",
            "CrossEntropyLoss (or NLLLoss) given probabilities instead of logits (log-probabilities)",
            "loss input rows (dim 1) are non-negative and sum to 1 within 1e-3 (half precision: eps x (1 + ln C)), "
            "in a training or validation call",
            "torch.nn.CrossEntropyLoss expects unnormalized logits; torch.nn.NLLLoss expects log-probabilities",
        ),
        entry(
            "sigmoid-before-bce-logits",
            "BCEWithLogitsLoss given values already squashed to (0, 1)",
            "every input value lies in [0, 1] and the model ends in a Sigmoid",
            "torch.nn.BCEWithLogitsLoss applies the sigmoid itself",
        ),
        entry(
            "sigmoid-bceloss",
            "Sigmoid + BCELoss instead of BCEWithLogitsLoss",
            "BCELoss fed by a Sigmoid output (severity info: correct but less stable)",
            "torch docs: BCEWithLogitsLoss is more numerically stable (log-sum-exp)",
        ),
        entry(
            "target-broadcast",
            "loss input and target shapes differ and broadcast silently",
            "input.shape != target.shape for an element-wise loss and the shapes broadcast",
            "torch warns once for MSELoss; the (N,1) vs (N,) case silently builds an (N,N) loss",
        ),
        entry(
            "clip-scaled-grads",
            "gradients clipped while GradScaler still scales them",
            "clip_grad_norm_ / clip_grad_value_ called on the model's gradients after scaler.scale(loss)."
            "backward() and before scaler.unscale_(optimizer) / scaler.step, with a scale > 1 (conclusive at the "
            "first such clip; the clip threshold then acts on the gradients times the scale, 65536 at first)",
            "PyTorch docs, 'Automatic Mixed Precision examples: Gradient clipping' (unscale_ before clipping); "
            "pytorch/pytorch#40907",
        ),
        entry(
            "nll-without-log-softmax",
            "NLLLoss given raw scores instead of log-probabilities",
            "NLLLoss input (classes on dim 1) with a row, not ignored by its target, whose logsumexp is off 0 by "
            "more than 1e-3 (half precision: eps x (1 + ln C)); log_softmax rows have logsumexp 0 and values <= 0; "
            "no other dim normalized",
            "PyTorch docs, torch.nn.NLLLoss: 'The input given through a forward call is expected to contain "
            "log-probabilities of each class' (obtained with a LogSoftmax layer)",
        ),
        entry(
            "softmax-wrong-dim",
            "softmax / log_softmax taken over the batch (or time) dim instead of the classes",
            "the CrossEntropyLoss/NLLLoss input sums to 1 (or has logsumexp 0) within 1e-3 over a dim other "
            "than 1 of size > 1 (half precision: eps x (1 + ln size)), while over dim 1 it does not (a batch of 1 "
            "is never judged on dim 0)",
            "PyTorch docs, torch.nn.Softmax / LogSoftmax: 'dim: A dimension along which Softmax will be "
            "computed (so every slice along dim will sum to 1)'; fxia22/pointnet.pytorch#27",
        ),
        entry(
            "log-softmax-unstable",
            "torch.log(softmax(x)) underflows to -inf",
            "a torch.log node in the loss's graph takes the log of a softmax output holding an exact 0 (log "
            "gives -inf, its gradient NaN); conclusive at the first such step",
            "PyTorch docs, torch.nn.functional.log_softmax: 'While mathematically equivalent to log(softmax(x)), "
            "doing these two operations separately is slower and numerically unstable'; pytorch/pytorch#1620",
        ),
        entry(
            "lr-too-high",
            "updates too large for the weights",
            "conclusive: the loss jumps to >= 100x its untrained level after updates above 1e-2 of the weights "
            "(median update/weight ratio; the blow-up is reported even when the loss comes back or the units die); "
            "persistent: median update/weight ratio above 1e-2 (10x the 1e-3 reference) on 3 samples in a row, "
            "with the loss stalled above 30% of its start (healthy Adam/SGD runs on digits sit at 1-4e-2 while "
            "converging); in a GAN, whose losses never settle, above 1e-1",
            "CS231n 'Ratio of weights:updates' ~1e-3; CS231n 'Babysitting the learning process': a loss that "
            "explodes means the learning rate is too high",
            "state",
        ),
        entry(
            "lr-too-low",
            "updates too small to learn",
            "median update/weight ratio below 1e-5 (100x under the 1e-3 reference) on 3 samples in a row",
            "CS231n 'Ratio of weights:updates' ~1e-3",
            "state",
        ),
        entry(
            "lr-schedule-collapse",
            "a learning-rate schedule drove the learning rate to nothing while the loss stalls",
            "the learning rate below 1/1000 of its maximum for >= 10 steps and >= 20% of the run, still there, "
            "and the loss not falling over those steps (the scheduler and its step count named; a per-epoch "
            "schedule stepped every batch); cosine/one-cycle schedules reach it only in their last ~2%",
            "PyTorch docs, torch.optim 'How to adjust learning rate': scheduler.step() is called once per epoch "
            "for epoch-based schedulers such as StepLR",
            "state",
        ),
        entry(
            "dead-relu",
            "a large fraction of ReLU units never activate",
            "conclusive: every unit of a ReLU (module or torch.relu in forward) zero on the whole batch (>= 8 "
            "rows), the layers before it getting exactly zero gradient; persistent: >= 70% of its units zero on "
            "the whole batch on 3 samples in a row",
            "published dead-unit detectors use >= 70% of outputs <= 0; a unit zero on every example passes no "
            "gradient (CS231n 'Commonly used activation functions': dead ReLUs)",
            "state",
        ),
        entry(
            "saturated-activation",
            "tanh/sigmoid outputs pinned near their limits",
            "watch: > 50% of a hidden tanh's outputs beyond +-0.99 (|pre-activation| > 2.65, tanh' < 0.02) or a "
            "sigmoid's within 0.01 of 0 or 1 (|pre-activation| > 4.6), at initialization (the first step) or on "
            "3 samples in a row, or >= 90% on one sample (the model's output layer is left out: targets at 0/1 "
            "or +-1 pin it on purpose); check: > 50% of pre-activations beyond +-5",
            "Karpathy, 'Building makemore Part 3' (|tanh| > 0.99 as saturated, a saturated init); Glorot & "
            "Bengio 2010; CS231n 'Activation / Gradient distributions per layer'",
            "state",
        ),
        entry(
            "exploding-gradients",
            "gradient norms grow without bound",
            "conclusive: the untrained loss already >= 100x the loss of a predictor that ignores the input (the "
            "init blows activations up), or a transient blow-up (loss >= 100x its untrained level, or the "
            "gradient norm >= 1000x its previous median) without large updates before it; persistent: total "
            "gradient norm above 1e3, or x100 over its first value, on 3 steps in a row (withdrawn when it "
            "comes down: a sum-reduced loss starts with large gradients)",
            "Pascanu et al. 2013, gradient clipping; Glorot & Bengio 2010 (initialization scale)",
            "state",
        ),
        entry(
            "vanishing-gradients",
            "gradients vanish in early layers",
            "first layer's gradient norm below 1e-7, or 1e-4 x the last layer's, on 3 samples in a row",
            "Glorot & Bengio 2010",
            "state",
        ),
        entry(
            "nonfinite",
            "NaN or Inf in loss, activations or gradients",
            "any non-finite value; the first layer that produced one is named",
            "always a bug",
        ),
        entry(
            "no-grad",
            "trainable parameters that never receive a gradient",
            "requires_grad=True and .grad is None after backward",
            "detached graph, unused layer, or a frozen layer by accident",
            "state",
        ),
        entry(
            "frozen-by-accident",
            "nothing the optimizer holds can train",
            "every parameter the optimizer holds has requires_grad=False, or its parameter groups are empty "
            "(error, from the first step); one whole parameter group frozen while others train: info (a "
            "backbone frozen for now); a backbone frozen with only the head in the optimizer is silent; frozen "
            "layers still at PyTorch's default init while the rest trains (weights uniform within "
            "+-1/sqrt(fan_in), 15% spread tolerance): warning with a norm layer at exactly weight 1, bias 0, "
            "else info; the pretrained first layers training while deeper ones are frozen and the head "
            "trains (an inverted freeze): info",
            "PyTorch docs, 'Autograd mechanics: Excluding subgraphs from backward' (requires_grad=False freezes "
            "a parameter; the optimizer then never updates it); nn.Linear/nn.Conv2d reset_parameters (the "
            "default init); pytorch/vision#2164, wannabeOG/MAS-PyTorch#1",
            "state",
        ),
        entry(
            "optimizer-never-steps",
            "backward passes run but the optimizer never steps",
            ">= 10 backward passes in train mode (or any, at the end of the run) and no optimizer.step(); "
            "forward passes in train mode with neither a backward pass nor a step: info",
            "PyTorch docs, 'Optimizing the model parameters' tutorial: zero_grad(), loss.backward(), "
            "optimizer.step() make one training step",
            "state",
        ),
        entry(
            "unregistered-submodule",
            "layers kept in a plain Python list/dict: not in model.parameters(), not moved, not saved",
            "a Module attribute that is a list/tuple/dict holding Modules or Parameters with trainable tensors "
            "registered nowhere in the model: warning once a backward pass reaches them and no optimizer holds "
            "them (check: after its backward pass); info when the optimizer was given them by hand or nothing "
            "reaches them",
            "PyTorch docs, torch.nn.ModuleList: 'Holds submodules in a list ... properly registered, and will be "
            "visible by all Module methods'; pytorch/pytorch#715 and #1053 (apaszke: 'Use nn.ModuleList')",
        ),
        entry(
            "params-not-in-optimizer",
            "parameters that get gradients but that no optimizer holds",
            "parameters reached by the backward pass, held by no optimizer seen stepping and unchanged, while "
            "the optimizer holds others, after >= 2 optimizer steps (or 1 at the end); a part left out before "
            "the last layer the optimizer holds (a backbone frozen by omission) is info",
            "PyTorch docs, torch.optim: 'you have to give it an iterable containing the parameters ... to "
            "optimize'; ifzhang/FairMOT#125, zjunlp/HVPNeT#5",
            "state",
        ),
        entry(
            "optimizer-stale-params",
            "the optimizer steps tensors the model no longer has",
            "the optimizer holds tensors that are not the model's and that no backward pass reaches, while "
            "model parameters the backward pass reaches are held by no optimizer (conclusive from the first "
            "step)",
            "PyTorch docs, torch.optim: 'construct the optimizer ... after moving the model'; "
            "pytorch/pytorch#54765 (ezyang: 'You need to reinitialize the optimizer')",
        ),
        entry(
            "optimizer-wrong-network",
            "one network stepped with the other network's optimizer",
            "watch_gan: the optimizer passed for D holds none of D's parameters, or holds G's parameters too "
            "(one optimizer over both networks, or the same optimizer passed for D and G)",
            "PyTorch DCGAN tutorial: optimizerD = Adam(netD.parameters()), optimizerG = Adam(netG.parameters()); "
            "Lornatang/SRGAN-PyTorch#85, parthagrawal02/MAE_GAN#1",
        ),
        entry(
            "loss-not-decreasing",
            "the loss curve is flat",
            "last-epoch loss > 95% of the first-epoch loss after >= 3 epochs",
            "CS231n 'Babysitting the learning process'",
            "state",
        ),
        entry(
            "loss-diverging",
            "the loss grows",
            "loss > 3x its minimum so far, or non-finite",
            "CS231n loss curve shapes: learning rate too high",
            "state",
        ),
        entry(
            "loss-oscillating",
            "the loss wiggles far more than the batch size explains",
            "step-to-step std of the loss (consecutive differences / sqrt 2) above 0.3 of the period's mean and "
            "above 2x what sampling explains, (per-example loss std / mean) / sqrt(examples per step), while "
            "the period's mean does not fall; one example per step is all sampling",
            "CS231n 'Babysitting the learning process': the wiggle relates to the batch size, a large wiggle "
            "with a large batch means the learning rate is too high; the standard error of a mean is std/sqrt(n)",
            "state",
        ),
        entry(
            "predicts-mode",
            "predictions collapse onto one class",
            "one class receives >= 80% of argmax predictions and >= 1.5x its label frequency, or the other "
            "classes keep <= 1/4 of their label share; for language-model targets also a loss >= 90% of the "
            "labels' entropy; two periods in a row (one at the end of the run)",
            "stats.stackexchange.com/q/352036 'What should I do when my neural network doesn't learn?': check the network at least finds the mode of the labels",
            "state",
        ),
        entry(
            "class-imbalance",
            "label frequencies are skewed and the model pays for it",
            "largest/smallest class count ratio >= 5 and a rare class predicted < half as often as labelled, "
            "with no class weights, focal loss or weighted sampler in place (else info); never for "
            "language-model targets (a time dimension, or > 20 classes none of them half the labels)",
            "stats.stackexchange.com/q/352036 'What should I do when my neural network doesn't learn?': weight the loss for imbalanced classes; Lin et al. 2017 (focal loss)",
            "state",
        ),
        entry(
            "unnormalized-input",
            "input scale far from zero-mean / unit-variance",
            "|mean| > 3 or std > 10 or std < 0.01 on a float input",
            "CS231n 'Data preprocessing'",
        ),
        entry(
            "eval-mode",
            "optimizer steps taken while the model is in eval mode",
            "optimizer.step() with a Dropout/BatchNorm layer in eval mode",
            "model.eval() left on after validation",
        ),
        entry(
            "dropout-active-in-eval",
            "dropout (or another random op) still active after model.eval(): evaluation is random",
            "a dropout function called with training=True and p > 0 in an eval-mode forward, or the same input "
            "tensor giving outputs that differ by > 1e-4 (relative) in two eval-mode forwards with the weights "
            "unchanged",
            "PyTorch docs, torch.nn.functional.dropout: training defaults to True (apply dropout if is True); "
            "pytorch/pytorch#11999 'Dropout still active in .eval() mode'",
        ),
        entry(
            "unshuffled-data",
            "training data read in class order: most batches hold a single class",
            ">= 50% of >= 8 training batches (of >= 4 labels) single-class, of >= 2 classes, where random "
            "batches would be single-class <= 5% of the time (sum over classes of share^batch)",
            "PyTorch docs, torch.utils.data.DataLoader: shuffle defaults to False (SequentialSampler); "
            "Bengio 2012, 'Practical recommendations for gradient-based training', sec. 3.1: examples in a "
            "minibatch should be drawn independently (shuffle when the data are ordered)",
        ),
        entry(
            "rnn-batch-first-mismatch",
            "an RNN/LSTM/GRU fed (batch, seq, feature) as (seq, batch, feature), or the reverse",
            "on >= 2 training steps (and on none the other way) the layer's time axis has the size of the "
            "loss's batch (targets' first dimension) and its batch axis another size > 1",
            "PyTorch docs, torch.nn.LSTM: batch_first=False expects input (L, N, H_in); "
            "pytorch/pytorch#1538 and #2674",
        ),
        entry(
            "batchnorm-small-batch",
            "BatchNorm trained on batches of 1 or a few: its batch statistics mismatch the running ones",
            "median batch <= 2 (warning; 3-4: advice) over >= 3 train-mode forwards of a BatchNorm layer that "
            "tracks running statistics",
            "Wu & He 2018, 'Group Normalization', Fig. 1: ResNet-50 ImageNet error rises steeply as the batch "
            "shrinks below 8 images (34.7% at 2 vs 23.6% at 32); Ioffe & Szegedy 2015, sec. 3.1",
        ),
        entry(
            "loss-term-detached",
            "a term of the backward'd loss is built from .detach()ed tensors: it trains nothing",
            "on >= 2 backward passes the loss adds a non-zero scalar computed only from tensors detached from "
            "the graph (followed on the first 20 forward-to-backward windows, then every 10th)",
            "PyTorch docs, torch.Tensor.detach: the result never requires gradient (autograd 'Excluding "
            "subgraphs from backward'); Impavidity/relogic#6, yuval-reshef/StreamVC#3",
        ),
        entry(
            "labels-misaligned",
            "training labels independent of their inputs (shuffled or split apart from them)",
            "on the first 400 training examples the nearest neighbour's label agrees no more than chance "
            "(sum of squared class shares, judged when <= 0.5) + 2 standard errors, and after >= 100 steps the mean loss of the "
            "last 30 is >= 0.75 x the loss of predicting the class shares (label entropy)",
            "Zhang et al. 2017, 'Understanding deep learning requires rethinking generalization' (random labels: "
            "training loss falls only by memorization, test accuracy at chance); Cover & Hart 1967 (1-NN error "
            "is at most twice the Bayes error, so a learnable task's 1-NN agreement is far above chance)",
            "state",
        ),
    ]
    + MORE
)
