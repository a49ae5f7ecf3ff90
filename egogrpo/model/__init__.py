"""The motion prior: state packing, conditioning, the EgoAllo denoiser, noise schedule, sampler, placement, checkpoints."""
