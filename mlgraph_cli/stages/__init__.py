"""One function per pipeline stage: paths and a config in, a small result out; no printing."""
