"""DreamPose (Karras et al. 2023) as native ComfyUI objects.

A DreamPose set is three files: a diffusers SD1.4 UNet whose ``conv_in`` takes 14 channels (4 latent + 5 poses x
DensePose UV), the CLIP-VAE ``Embedding_Adapter`` that turns a reference image into 50 cross-attention tokens, and a
finetuned SD1.4 VAE. ``checkpoint`` loads them into a ComfyUI MODEL / VAE, ``adapter`` and ``clip_image`` build the
image tokens, ``poses`` turns DensePose UV into the 10-channel windows the UNet reads, and ``guidance`` builds the
dual classifier-free guidance over image and pose.
"""
