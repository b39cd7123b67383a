"""Controls over the motion during sampling: multivals and keyframes, FreeInit, FreeNoise and prompt travel."""
