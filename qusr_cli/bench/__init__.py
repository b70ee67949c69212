"""`qusr bench`: quality (PSNR/SSIM/NIQE) and speed (time, memory, FLOPs) of qusr against baselines.

Modules: ``datasets`` (evaluation sets, synthetic pairs, speed inputs), ``methods`` (what is
compared), ``measure`` (clocks, memory, FLOPs, machine), ``runner`` (the cached quality pass and
the isolated speed pass), ``report`` (markdown and JSON) and ``plots`` (PNG figures).
"""
