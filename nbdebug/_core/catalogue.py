"""The findings catalogue: every code nbdebug can raise, what it means, its threshold, the public source
of that threshold and its nature, so that a user reading a finding can judge it and a developer adding a
check does not invent a second code for the same bug. The README's table is generated from it.

Nature: an *event* happened (a NaN, a leaked gradient, a step in eval mode, a blow-up): later good news
does not undo it. A *state* holds while its evidence does (the loss is flat, the units are dead): a live
monitor withdraws it when later evidence contradicts it, and keeps the withdrawal in its history."""

from __future__ import annotations

from dataclasses import dataclass

NATURES = ("event", "state")


@dataclass(frozen=True)
class CodeInfo:
    """Catalogue entry: what the code means, its threshold, the source of that threshold, and its nature
    ("event": never withdrawn; "state": withdrawn when later evidence contradicts it)."""

    code: str
    title: str
    threshold: str
    source: str
    nature: str = "event"


def _c(code: str, title: str, threshold: str, source: str, nature: str = "event") -> tuple[str, CodeInfo]:
    if nature not in NATURES:
        raise ValueError(f"{code}: nature must be one of {NATURES}, got {nature!r}")
    return code, CodeInfo(code, title, threshold, source, nature)


def nature(code: str) -> str:
    """ "event" or "state" (see the module docstring); codes outside the catalogue are events."""
    info = CATALOGUE.get(code)
    return info.nature if info is not None else "event"


CATALOGUE: dict[str, CodeInfo] = dict(
    [
        _c(
            "initial-loss",
            "first loss far from chance level",
            "|loss - expected| > 0.5 * expected + 0.1, expected = ln(C) for C-class cross-entropy, ln 2 for BCE",
            "CS231n 'Loss sanity checking': -ln(0.1) = 2.302 for 10 classes",
        ),
        _c(
            "cannot-overfit",
            "a tiny subset is not fit to near-zero loss",
            "loss above the target (default 0.05, or 5% of the initial loss) when the budget runs out",
            "CS231n 'Overfit a tiny subset of data' (20 examples, zero cost)",
        ),
        _c(
            "grad-not-zeroed",
            "gradients carried over from one optimizer step into the next",
            ".grad at a backward's start equals the .grad the previous optimizer.step() used",
            "PyTorch docs, torch.optim.Optimizer.zero_grad: gradients accumulate in .grad across backward() calls",
        ),
        _c(
            "softmax-before-ce",
            "CrossEntropyLoss given probabilities instead of logits",
            "loss input rows are non-negative and sum to 1 within 1e-3",
            "torch.nn.CrossEntropyLoss expects unnormalized logits",
        ),
        _c(
            "sigmoid-before-bce-logits",
            "BCEWithLogitsLoss given values already squashed to (0, 1)",
            "every input value lies in [0, 1] and the model ends in a Sigmoid",
            "torch.nn.BCEWithLogitsLoss applies the sigmoid itself",
        ),
        _c(
            "sigmoid-bceloss",
            "Sigmoid + BCELoss instead of BCEWithLogitsLoss",
            "BCELoss fed by a Sigmoid output (severity info: correct but less stable)",
            "torch docs: BCEWithLogitsLoss is more numerically stable (log-sum-exp)",
        ),
        _c(
            "target-broadcast",
            "loss input and target shapes differ and broadcast silently",
            "input.shape != target.shape for an element-wise loss and the shapes broadcast",
            "torch warns once for MSELoss; the (N,1) vs (N,) case silently builds an (N,N) loss",
        ),
        _c(
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
        _c(
            "lr-too-low",
            "updates too small to learn",
            "median update/weight ratio below 1e-5 (100x under the 1e-3 reference) on 3 samples in a row",
            "CS231n 'Ratio of weights:updates' ~1e-3",
            "state",
        ),
        _c(
            "lr-schedule-collapse",
            "a learning-rate schedule drove the learning rate to nothing while the loss stalls",
            "the learning rate below 1/1000 of its maximum for >= 10 steps and >= 20% of the run, still there, "
            "and the loss not falling over those steps (the scheduler and its step count named; a per-epoch "
            "schedule stepped every batch); cosine/one-cycle schedules reach it only in their last ~2%",
            "PyTorch docs, torch.optim 'How to adjust learning rate': scheduler.step() is called once per epoch "
            "for epoch-based schedulers such as StepLR",
            "state",
        ),
        _c(
            "dead-relu",
            "a large fraction of ReLU units never activate",
            "conclusive: every unit of a ReLU (module or torch.relu in forward) zero on the whole batch (>= 8 "
            "rows), the layers before it getting exactly zero gradient; persistent: >= 70% of its units zero on "
            "the whole batch on 3 samples in a row",
            "published dead-unit detectors use >= 70% of outputs <= 0; a unit zero on every example passes no "
            "gradient (CS231n 'Commonly used activation functions': dead ReLUs)",
            "state",
        ),
        _c(
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
        _c(
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
        _c(
            "vanishing-gradients",
            "gradients vanish in early layers",
            "first layer's gradient norm below 1e-7, or 1e-4 x the last layer's, on 3 samples in a row",
            "Glorot & Bengio 2010",
            "state",
        ),
        _c(
            "nonfinite",
            "NaN or Inf in loss, activations or gradients",
            "any non-finite value; the first layer that produced one is named",
            "always a bug",
        ),
        _c(
            "no-grad",
            "trainable parameters that never receive a gradient",
            "requires_grad=True and .grad is None after backward",
            "detached graph, unused layer, or a frozen layer by accident",
            "state",
        ),
        _c(
            "frozen-by-accident",
            "nothing the optimizer holds can train",
            "every parameter the optimizer holds has requires_grad=False, or its parameter groups are empty "
            "(error, from the first step); one whole parameter group frozen while others train: info (a "
            "backbone frozen for now); a backbone frozen with only the head in the optimizer is silent",
            "PyTorch docs, 'Autograd mechanics: Excluding subgraphs from backward' (requires_grad=False freezes "
            "a parameter; the optimizer then never updates it)",
            "state",
        ),
        _c(
            "optimizer-never-steps",
            "backward passes run but the optimizer never steps",
            ">= 10 backward passes in train mode (or any, at the end of the run) and no optimizer.step(); "
            "forward passes in train mode with neither a backward pass nor a step: info",
            "PyTorch docs, 'Optimizing the model parameters' tutorial: zero_grad(), loss.backward(), "
            "optimizer.step() make one training step",
            "state",
        ),
        _c(
            "loss-not-decreasing",
            "the loss curve is flat",
            "last-epoch loss > 95% of the first-epoch loss after >= 3 epochs",
            "CS231n 'Babysitting the learning process'",
            "state",
        ),
        _c(
            "loss-diverging",
            "the loss grows",
            "loss > 3x its minimum so far, or non-finite",
            "CS231n loss curve shapes: learning rate too high",
            "state",
        ),
        _c(
            "loss-oscillating",
            "the loss wiggles far more than the batch size explains",
            "step-to-step std of the loss (consecutive differences / sqrt 2) above 0.3 of the period's mean and "
            "above 2x what sampling explains, (per-example loss std / mean) / sqrt(examples per step), while "
            "the period's mean does not fall; one example per step is all sampling",
            "CS231n 'Babysitting the learning process': the wiggle relates to the batch size, a large wiggle "
            "with a large batch means the learning rate is too high; the standard error of a mean is std/sqrt(n)",
            "state",
        ),
        _c(
            "predicts-mode",
            "predictions collapse onto one class",
            "one class receives >= 80% of argmax predictions and >= 1.5x its label frequency, or the other "
            "classes keep <= 1/4 of their label share; for language-model targets also a loss >= 90% of the "
            "labels' entropy; two periods in a row (one at the end of the run)",
            "stats.stackexchange.com/q/352036 'What should I do when my neural network doesn't learn?': check the network at least finds the mode of the labels",
            "state",
        ),
        _c(
            "class-imbalance",
            "label frequencies are skewed and the model pays for it",
            "largest/smallest class count ratio >= 5 and a rare class predicted < half as often as labelled, "
            "with no class weights, focal loss or weighted sampler in place (else info); never for "
            "language-model targets (a time dimension, or > 20 classes none of them half the labels)",
            "stats.stackexchange.com/q/352036 'What should I do when my neural network doesn't learn?': weight the loss for imbalanced classes; Lin et al. 2017 (focal loss)",
            "state",
        ),
        _c(
            "unnormalized-input",
            "input scale far from zero-mean / unit-variance",
            "|mean| > 3 or std > 10 or std < 0.01 on a float input",
            "CS231n 'Data preprocessing'",
        ),
        _c(
            "eval-mode",
            "optimizer steps taken while the model is in eval mode",
            "optimizer.step() with a Dropout/BatchNorm layer in eval mode",
            "model.eval() left on after validation",
        ),
        _c(
            "dropout-active-in-eval",
            "dropout (or another random op) still active after model.eval(): evaluation is random",
            "a dropout function called with training=True and p > 0 in an eval-mode forward, or the same input "
            "tensor giving outputs that differ by > 1e-4 (relative) in two eval-mode forwards with the weights "
            "unchanged",
            "PyTorch docs, torch.nn.functional.dropout: training defaults to True (apply dropout if is True); "
            "pytorch/pytorch#11999 'Dropout still active in .eval() mode'",
        ),
        _c(
            "unshuffled-data",
            "training data read in class order: most batches hold a single class",
            ">= 50% of >= 8 training batches (of >= 4 labels) single-class, of >= 2 classes, where random "
            "batches would be single-class <= 5% of the time (sum over classes of share^batch)",
            "PyTorch docs, torch.utils.data.DataLoader: shuffle defaults to False (SequentialSampler); "
            "Bengio 2012, 'Practical recommendations for gradient-based training', sec. 3.1: examples in a "
            "minibatch should be drawn independently (shuffle when the data are ordered)",
        ),
        _c(
            "rnn-batch-first-mismatch",
            "an RNN/LSTM/GRU fed (batch, seq, feature) as (seq, batch, feature), or the reverse",
            "on >= 2 training steps (and on none the other way) the layer's time axis has the size of the "
            "loss's batch (targets' first dimension) and its batch axis another size > 1",
            "PyTorch docs, torch.nn.LSTM: batch_first=False expects input (L, N, H_in); "
            "pytorch/pytorch#1538 and #2674",
        ),
        _c(
            "batchnorm-small-batch",
            "BatchNorm trained on batches of 1 or a few: its batch statistics mismatch the running ones",
            "median batch <= 2 (warning; 3-4: advice) over >= 3 train-mode forwards of a BatchNorm layer that "
            "tracks running statistics",
            "Wu & He 2018, 'Group Normalization', Fig. 1: ResNet-50 ImageNet error rises steeply as the batch "
            "shrinks below 8 images (34.7% at 2 vs 23.6% at 32); Ioffe & Szegedy 2015, sec. 3.1",
        ),
        _c(
            "loss-term-detached",
            "a term of the backward'd loss is built from .detach()ed tensors: it trains nothing",
            "on >= 2 backward passes the loss adds a non-zero scalar computed only from tensors detached from "
            "the graph (followed on the first 20 forward-to-backward windows, then every 10th)",
            "PyTorch docs, torch.Tensor.detach: the result never requires gradient (autograd 'Excluding "
            "subgraphs from backward'); Impavidity/relogic#6, yuval-reshef/StreamVC#3",
        ),
        _c(
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
        _c(
            "unstable-labels",
            "the dataset returns a different label for the same index",
            "any class label that differs between two reads of one index (overfit reads its subset through "
            "__getitem__ again every epoch); inputs that differ are augmentation and normal",
            "PyTorch docs, torch.utils.data.Dataset: __getitem__ fetches the sample for a given key; "
            "torchvision datasets augment the input (transform) and map the label (target_transform) apart",
        ),
        _c(
            "reg-not-increasing-loss",
            "raising regularization strength did not raise the loss",
            "loss at a larger regularization strength <= loss at the smaller one",
            "CS231n: increasing the regularization strength should increase the loss",
        ),
        _c(
            "gradcheck-failed",
            "analytic and numeric gradients disagree",
            "max relative error > 1e-2 (1e-4 suspicious, 1e-7 good)",
            "CS231n 'Gradient checks'",
        ),
        _c(
            "gpu-fragmentation",
            "reserved GPU memory is free only in pieces too small for the next tensor",
            "reserved-but-unallocated >= 20% of reserved and >= 64 MiB, and the largest free block < half of it",
            "PyTorch docs, CUDA semantics: memory management (the caching allocator, memory_snapshot)",
        ),
        _c(
            "unreachable-tensors",
            "tensors alive that no notebook name reaches",
            "any tensor found by gc but not by name (warning from 1 MiB in total, else info)",
            "pytorch_memlab MemReporter lists gc-only tensors; notebook leaks via closures, hooks, tracebacks",
        ),
        _c(
            "graph-retained",
            "a tensor kept in a variable still holds its autograd graph",
            "a non-leaf tensor (grad_fn set) stored in a user variable or container",
            "PyTorch FAQ 'My model reports cuda runtime error(2): out of memory' (total_loss += loss)",
        ),
        _c(
            "overfitting",
            "the model fits the training data better and better, the validation data worse (advice, info)",
            "validation loss up >= 3% from its minimum for >= 2 epochs while the training loss falls, or a "
            "train/validation accuracy gap above 2 standard errors of the validation accuracy + 2% that grew "
            "over 3 epochs while training improves; the loss rise must also exceed 2 standard errors (taken as loss / "
            "sqrt(n)) with validation accuracy not clearly up, and the training loss be at most half the first "
            "epoch's; needs >= 3 epochs with validation; names the best epoch (lowest validation loss)",
            "CS231n 'Babysitting the learning process': Training & Validation accuracy",
        ),
        _c(
            "underfitting",
            "training and validation accuracy are close, low and no longer improving (advice, info)",
            "|train - val accuracy| <= 2 standard errors + 2%, both < 90%, validation accuracy not up by more "
            "than 2 standard errors and training loss within 2% over the last 3 epochs",
            "CS231n 'Babysitting the learning process': no gap at a low accuracy means the model is too small",
        ),
        _c(
            "val-too-small",
            "the validation set is too small to tell a real change from noise (advice, info)",
            "standard error of the validation accuracy sqrt(p(1-p)/n) > 2.5% and every epoch-to-epoch change "
            "over the last 3 epochs within 2 standard errors",
            "binomial standard error of an accuracy; CS231n: a validation set of respectable size",
        ),
        _c(
            "val-above-train",
            "validation accuracy stays above training accuracy (advice, info)",
            "validation accuracy above training accuracy by 2 standard errors + 1% on the last 3 epochs, with "
            "training accuracy no longer rising; explained by dropout when the model has it, else a hint of "
            "leakage or mislabelled training data",
            "Keras FAQ 'Why is my training loss much higher than my testing loss?' (dropout is off at test time)",
        ),
        _c(
            "gan-d-collapse",
            "the discriminator wins outright",
            "D(x) > 0.95 and D(G(z)) < 0.05 (as probabilities) for 5 G steps in a row; D's loss is shown, "
            "not required: soft labels keep it above 0 while D separates perfectly",
            "ganhacks (github.com/soumith/ganhacks): a discriminator loss going to 0 is a failure mode",
        ),
        _c(
            "gan-mode-collapse",
            "generator samples lose diversity",
            "conclusive: G's samples from independent noise within 0.1% of the real spread of each other (G "
            "ignores its noise), from the first G step; persistent: mean pairwise distance within G's batch "
            "< 10% of the real batch's on 2 measurements, and fallen to < 1/2 of its best or < 1/4 of G's "
            "samples from independent noise (an untrained G starts narrow: ~5% of the real spread)",
            "ganhacks; 'How to Identify and Diagnose GAN Failure Modes'",
            "state",
        ),
        _c(
            "gan-g-vanishing",
            "the generator's gradients vanish while D wins",
            "gradient of G's loss at D's logits < 1% of its first-5-steps level while D(G(z)) < 0.05, "
            "3 G steps in a row; or that gradient (summed over the fakes) within 2% of D(G(z)) while D(G(z)) "
            "< 0.3, 3 G steps in a row: the saturating log(1 - D(G(z))) itself (the non-saturating loss gives "
            "1 - D(G(z)))",
            "Goodfellow et al. 2014 (saturating generator loss)",
            "state",
        ),
        _c(
            "ddp-duplicate-data",
            "ranks of a DistributedDataParallel run train on identical batches",
            "the fingerprint of the step's input (sum, sum of squares and 64 strided values of its first tensor) "
            "is equal on two or more ranks at >= 2 sampled steps",
            "PyTorch docs, torch.utils.data.distributed.DistributedSampler: each process loads a subset of the "
            "dataset exclusive to it",
        ),
        _c(
            "ddp-sampler-epoch",
            "DistributedSampler.set_epoch never called: the same order every epoch",
            "a DistributedSampler(shuffle=True) of the training DataLoader has the same epoch at two passes",
            "PyTorch docs, DistributedSampler: calling set_epoch() at the beginning of each epoch is necessary to "
            "make shuffling work properly across epochs, otherwise the same ordering is always used",
        ),
        _c(
            "ddp-params-diverged",
            "parameters or buffers differ across ranks",
            "a parameter's or buffer's sum or norm, as the forward pass used it, differs across ranks by more "
            "than 1e-6 relative at a sampled step (DDP keeps replicas bitwise identical)",
            "PyTorch docs, DDP notes: parameters are broadcast from rank 0 at construction and gradients are "
            "all-reduced, so all replicas stay identical; buffers: broadcast_buffers / SyncBatchNorm",
        ),
        _c(
            "ddp-unused-parameters",
            "parameters that get no gradient on some ranks",
            "a parameter not reached from the loss's autograd graph on a rank at a sampled step",
            "PyTorch docs, DistributedDataParallel find_unused_parameters: unused parameters are marked ready "
            "(reduced as zero gradients) instead of raising",
        ),
        _c(
            "ddp-straggler",
            "one rank far slower than the others",
            "a rank's data loading + forward time per step gives a relative score (fastest rank's time / its "
            "time) below 0.5 and is >= 5 ms slower, over the run or on 2 gathers in a row",
            "NVIDIA Resiliency Extension straggler detection: relative performance score against the fastest "
            "rank, per section (data loading, forward)",
        ),
        _c(
            "search-edge-of-range",
            "the best hyperparameter value sits at the edge of its search range",
            "best trial's value in the outer 10% of the range on the search scale (log10 for loguniform/"
            "intlog), >= 5 completed trials, the parameter is not flat, and (with >= 10 trials) the "
            "fitted trend of the score also peaks in that outer 10%",
            "CS231n 'Hyperparameter optimization': careful with best values on the border ",
        ),
        _c(
            "search-flat-parameter",
            "the score does not depend on a searched parameter",
            "the parameter's fitted effect (10th-90th percentile over the trials) is under the "
            "trial-to-trial noise (additive least-squares fit: a cubic per numeric parameter on its search "
            "scale, dummies for choices; noise = residual std), >= 10 completed trials; severity info",
            "Bergstra & Bengio 2012: few hyperparameters matter (low effective dimensionality)",
        ),
        _c(
            "search-too-few-trials",
            "too few trials for the number of searched parameters",
            "fewer than 10 completed trials per searched parameter; P(a top-5% trial) = 1 - 0.95^n",
            "Bergstra & Bengio 2012: 60 random trials find a top-5% point with 95% probability",
        ),
        _c(
            "search-trials-failed",
            "trials raised or returned NaN/Inf",
            "any failed trial (warning), every trial failed (error); failures clustered at one end of a "
            "numeric range are named",
            "a diverging trial is data about the range, not a reason to lose the search",
        ),
        _c(
            "internal-error",
            "an nbdebug check or hook raised (the training itself was not affected)",
            "any exception inside a check, a hook or a live view, reported once with the count and the first "
            "message (severity info; the bug corpus requires zero)",
            "a monitor must never fail silently: the other checks still run, and the error is named to report it",
        ),
    ]
)
