//! Speech recognition: whisper-rs (multilingual base) tuned for short telephone turns,
//! served by a shared pool of worker threads with a bounded queue.
