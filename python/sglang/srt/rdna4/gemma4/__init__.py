"""Gemma 4 on the 0.5.10 base: the pieces the 0.5.11 model file needs that 0.5.10 lacks
(the norm, proportional RoPE, config normalisation, dtype and softcap policy)."""
