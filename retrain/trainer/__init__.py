"""Fine-tuning without Django: samples in, a merged safetensors model directory out."""
