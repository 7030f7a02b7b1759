"""Every contact with a user's classes: loading them, the guard around each call, driving their optimizer."""
