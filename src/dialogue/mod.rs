//! Script dialogue core: loads 话术 documents and runs them as deterministic conversations.
