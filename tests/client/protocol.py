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
    "field-strength",
}
# What a DP-SGD site adds.
DP_METRICS = {"dp-epsilon", "dp-delta", "dp-steps", "dp-budget-exhausted"}
