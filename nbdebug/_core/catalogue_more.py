"""The catalogue's entries for the checks outside the training monitor (`check` / `overfit` /
`gradcheck`, memory, train/validation advice, GANs, DDP, search) and nbdebug's own errors; the
training monitor's are in `catalogue.py`, which merges both."""

from __future__ import annotations

from .codeinfo import CodeInfo, entry

MORE: list[tuple[str, CodeInfo]] = [
    entry(
        "unstable-labels",
        "the dataset returns a different label for the same index",
        "any class label that differs between two reads of one index (overfit reads its subset through "
        "__getitem__ again every epoch); inputs that differ are augmentation and normal",
        "PyTorch docs, torch.utils.data.Dataset: __getitem__ fetches the sample for a given key; "
        "torchvision datasets augment the input (transform) and map the label (target_transform) apart",
    ),
    entry(
        "reg-not-increasing-loss",
        "raising regularization strength did not raise the loss",
        "loss at a larger regularization strength <= loss at the smaller one",
        "CS231n: increasing the regularization strength should increase the loss",
    ),
    entry(
        "gradcheck-failed",
        "analytic and numeric gradients disagree",
        "max relative error > 1e-2 (1e-4 suspicious, 1e-7 good)",
        "CS231n 'Gradient checks'",
    ),
    entry(
        "gpu-fragmentation",
        "reserved GPU memory is free only in pieces too small for the next tensor",
        "reserved-but-unallocated >= 20% of reserved and >= 64 MiB, and the largest free block < half of it",
        "PyTorch docs, CUDA semantics: memory management (the caching allocator, memory_snapshot)",
    ),
    entry(
        "unreachable-tensors",
        "tensors alive that no notebook name reaches",
        "any tensor found by gc but not by name (warning from 1 MiB in total, else info)",
        "pytorch_memlab MemReporter lists gc-only tensors; notebook leaks via closures, hooks, tracebacks",
    ),
    entry(
        "graph-retained",
        "a tensor kept in a variable still holds its autograd graph",
        "a non-leaf tensor (grad_fn set) stored in a user variable or container",
        "PyTorch FAQ 'My model reports cuda runtime error(2): out of memory' (total_loss += loss)",
    ),
    entry(
        "overfitting",
        "the model fits the training data better and better, the validation data worse (advice, info)",
        "validation loss up >= 3% from its minimum for >= 2 epochs while the training loss falls, or a "
        "train/validation accuracy gap above 2 standard errors of the validation accuracy + 2% that grew "
        "over 3 epochs while training improves; the loss rise must also exceed 2 standard errors (taken as loss / "
        "sqrt(n)) with validation accuracy not clearly up, and the training loss be at most half the first "
        "epoch's; needs >= 3 epochs with validation; names the best epoch (lowest validation loss)",
        "CS231n 'Babysitting the learning process': Training & Validation accuracy",
    ),
    entry(
        "underfitting",
        "training and validation accuracy are close, low and no longer improving (advice, info)",
        "|train - val accuracy| <= 2 standard errors + 2%, both < 90%, validation accuracy not up by more "
        "than 2 standard errors and training loss within 2% over the last 3 epochs",
        "CS231n 'Babysitting the learning process': no gap at a low accuracy means the model is too small",
    ),
    entry(
        "val-too-small",
        "the validation set is too small to tell a real change from noise (advice, info)",
        "standard error of the validation accuracy sqrt(p(1-p)/n) > 2.5% and every epoch-to-epoch change "
        "over the last 3 epochs within 2 standard errors",
        "binomial standard error of an accuracy; CS231n: a validation set of respectable size",
    ),
    entry(
        "val-above-train",
        "validation accuracy stays above training accuracy (advice, info)",
        "validation accuracy above training accuracy by 2 standard errors + 1% on the last 3 epochs, with "
        "training accuracy no longer rising; explained by dropout when the model has it, else a hint of "
        "leakage or mislabelled training data",
        "Keras FAQ 'Why is my training loss much higher than my testing loss?' (dropout is off at test time)",
    ),
    entry(
        "gan-d-collapse",
        "the discriminator wins outright",
        "D(x) > 0.95 and D(G(z)) < 0.05 (as probabilities) for 5 G steps in a row; D's loss is shown, "
        "not required: soft labels keep it above 0 while D separates perfectly",
        "ganhacks (github.com/soumith/ganhacks): a discriminator loss going to 0 is a failure mode",
    ),
    entry(
        "gan-mode-collapse",
        "generator samples lose diversity",
        "conclusive: G's samples from independent noise within 0.1% of the real spread of each other (G "
        "ignores its noise), from the first G step; persistent: mean pairwise distance within G's batch "
        "< 10% of the real batch's on 2 measurements, and fallen to < 1/2 of its best or < 1/4 of G's "
        "samples from independent noise (an untrained G starts narrow: ~5% of the real spread)",
        "ganhacks; 'How to Identify and Diagnose GAN Failure Modes'",
        "state",
    ),
    entry(
        "gan-g-vanishing",
        "the generator's gradients vanish while D wins",
        "gradient of G's loss at D's logits < 1% of its first-5-steps level while D(G(z)) < 0.05, "
        "3 G steps in a row; or that gradient (summed over the fakes) within 2% of D(G(z)) while D(G(z)) "
        "< 0.3, 3 G steps in a row: the saturating log(1 - D(G(z))) itself (the non-saturating loss gives "
        "1 - D(G(z)))",
        "Goodfellow et al. 2014 (saturating generator loss)",
        "state",
    ),
    entry(
        "ddp-duplicate-data",
        "ranks of a DistributedDataParallel run train on identical batches",
        "the fingerprint of the step's input (sum, sum of squares and 64 strided values of its first tensor) "
        "is equal on two or more ranks at >= 2 sampled steps",
        "PyTorch docs, torch.utils.data.distributed.DistributedSampler: each process loads a subset of the "
        "dataset exclusive to it",
    ),
    entry(
        "ddp-sampler-epoch",
        "DistributedSampler.set_epoch never called: the same order every epoch",
        "a DistributedSampler(shuffle=True) of the training DataLoader has the same epoch at two passes",
        "PyTorch docs, DistributedSampler: calling set_epoch() at the beginning of each epoch is necessary to "
        "make shuffling work properly across epochs, otherwise the same ordering is always used",
    ),
    entry(
        "ddp-params-diverged",
        "parameters or buffers differ across ranks",
        "a parameter's or buffer's sum or norm, as the forward pass used it, differs across ranks by more "
        "than 1e-6 relative at a sampled step (DDP keeps replicas bitwise identical)",
        "PyTorch docs, DDP notes: parameters are broadcast from rank 0 at construction and gradients are "
        "all-reduced, so all replicas stay identical; buffers: broadcast_buffers / SyncBatchNorm",
    ),
    entry(
        "ddp-unused-parameters",
        "parameters that get no gradient on some ranks",
        "a parameter not reached from the loss's autograd graph on a rank at a sampled step",
        "PyTorch docs, DistributedDataParallel find_unused_parameters: unused parameters are marked ready "
        "(reduced as zero gradients) instead of raising",
    ),
    entry(
        "ddp-straggler",
        "one rank far slower than the others",
        "a rank's data loading + forward time per step gives a relative score (fastest rank's time / its "
        "time) below 0.5 and is >= 5 ms slower, over the run or on 2 gathers in a row",
        "NVIDIA Resiliency Extension straggler detection: relative performance score against the fastest "
        "rank, per section (data loading, forward)",
    ),
    entry(
        "search-edge-of-range",
        "the best hyperparameter value sits at the edge of its search range",
        "best trial's value in the outer 10% of the range on the search scale (log10 for loguniform/"
        "intlog), >= 5 completed trials, the parameter is not flat, and (with >= 10 trials) the "
        "fitted trend of the score also peaks in that outer 10%",
        "CS231n 'Hyperparameter optimization': careful with best values on the border ",
    ),
    entry(
        "search-flat-parameter",
        "the score does not depend on a searched parameter",
        "the parameter's fitted effect (10th-90th percentile over the trials) is under the "
        "trial-to-trial noise (additive least-squares fit: a cubic per numeric parameter on its search "
        "scale, dummies for choices; noise = residual std), >= 10 completed trials; severity info",
        "Bergstra & Bengio 2012: few hyperparameters matter (low effective dimensionality)",
    ),
    entry(
        "search-too-few-trials",
        "too few trials for the number of searched parameters",
        "fewer than 10 completed trials per searched parameter; P(a top-5% trial) = 1 - 0.95^n",
        "Bergstra & Bengio 2012: 60 random trials find a top-5% point with 95% probability",
    ),
    entry(
        "search-trials-failed",
        "trials raised or returned NaN/Inf",
        "any failed trial (warning), every trial failed (error); failures clustered at one end of a "
        "numeric range are named",
        "a diverging trial is data about the range, not a reason to lose the search",
    ),
    entry(
        "internal-error",
        "an nbdebug check or hook raised (the training itself was not affected)",
        "any exception inside a check, a hook or a live view, reported once with the count and the first "
        "message (severity info; the bug corpus requires zero)",
        "a monitor must never fail silently: the other checks still run, and the error is named to report it",
    ),
]
