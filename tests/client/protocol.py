"""The train reply's metric keys as docs/federation-protocol.md lists them."""

PROTOCOL_METRICS = {
    "num-examples",
    "slices-seen",
    "loss",
    "final-loss",
    "steps",
    "skipped-steps",
    "train-seconds",
    "val-psnr",
    "val-ssim",
    "val-nmse",
    "bad-files",
    "trainable-parameters",
    "field-strength",
    "build-seconds",
}
# What a DP-SGD site adds.
DP_METRICS = {"dp-epsilon", "dp-delta", "dp-steps", "dp-budget-exhausted"}
# What the ClientApp adds to every reply: where the site's time went before its work.
STARTUP_METRICS = {
    "process-seconds",
    "import-seconds",
    "setup-seconds",
    "site-worker",
    "handoff-seconds",
}
