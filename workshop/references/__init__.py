"""Reference implementations re-derived from the authors' code (and diffusers helpers), written without the pack's own helpers, that the parity tests compare against."""
