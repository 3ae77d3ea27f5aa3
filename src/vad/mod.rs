//! Voice activity detection (Silero v6 through ort) and the turn endpointer on top of it.
