//! Event processing: rule order, stop_after_match, CEL amounts, failures and their atomicity, reads.
