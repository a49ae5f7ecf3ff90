"""Recovering full-body motion from a real recording: `egogrpo recover RECORDING_DIR`.

`egogrpo.recover.aria` reads a Project Aria recording with its MPS outputs (head trajectory as CPF
poses at a fixed frame rate, floor height from the semidense point cloud, optional wrist/palm poses).
"""
