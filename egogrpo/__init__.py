"""egogrpo: full-body motion from a head trajectory (EgoAllo-style prior + MotionGRPO)."""

__version__ = "0.1.0"
