"""Score-based and diffusion models (Part IV): score matching, Langevin samplers, noise schedules."""
