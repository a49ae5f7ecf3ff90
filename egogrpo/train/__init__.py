"""Training loops: the diffusion prior, the perceptual reward model and GRPO post-training."""
