//! HTTP-level tests of the `scrip` server against a real Postgres (one fresh database per test).

mod activity;
mod balances;
mod books;
mod budgets;
mod common;
mod containment;
mod contract;
mod edges;
mod fuzz;
mod idempotency;
mod isolation;
mod ledger;
mod lots;
mod openapi;
mod parity;
mod pipeline;
mod process;
mod quickstart;
mod redemptions;
mod rules;
mod state;
mod throughput;
mod tier_lifecycle;
mod tiers;
mod validation;
mod wasm;
