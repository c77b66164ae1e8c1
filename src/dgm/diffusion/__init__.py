"""Part IV: score matching and Langevin samplers; noise schedules, the Gaussian diffusion process, DDPM and DDIM samplers."""
