//! Wasm rules: WebAssembly components exporting `scrip:rules/evaluator@0.4.0` (see `wit/rules.wit`), or an
//! earlier version (`wit/0.3.0`, `wit/0.2.0`, `wit/0.1.0`): a component built against one keeps working, given
//! what that version gives and its actions read as the current version's.
//!
//! One engine and one linker per process; one pre-instantiated component per module, cached by its
//! SHA-256; a fresh store per evaluation, dropped afterwards (a trapped instance is never entered again).
//! Guests get nothing ambient: no files, environment, arguments or network; the wall clock reads the event's
//! time and randomness is seeded from the event id, so the same event always gives the same result. Fuel
//! decides when a rule is stopped; memory, output and captured logs are capped.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
    StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

wasmtime::component::bindgen!({ path: "../wit", world: "rule" });

/// The interface as components built against 0.3.0 export it.
mod v0_3 {
    wasmtime::component::bindgen!({ path: "../wit/0.3.0", world: "rule" });

    pub use self::scrip::rules::types::{
        Action, BalanceChange, CreditBucket, Event, ForfeitBucket, Participant, RuleError,
        TagChange, Target, TierLevel,
    };
}

/// The interface as components built against 0.2.0 export it.
mod v0_2 {
    wasmtime::component::bindgen!({ path: "../wit/0.2.0", world: "rule" });

    pub use self::scrip::rules::types::{
        Action, AttributeChange, BalanceChange, CounterChange, Credit, CreditBucket, Debit, Event,
        ForfeitBucket, Participant, RuleError, TagChange, Target,
    };
}

/// The interface as components built against 0.1.0 export it.
mod v0_1 {
    wasmtime::component::bindgen!({ path: "../wit/0.1.0", world: "rule" });

    pub use self::scrip::rules::types::{Action, Event, Participant, RuleError, Target};
}

pub use scrip::rules::types::{
    Action, AttributeChange, BalanceChange, Credit, CreditBucket, Forfeit, ForfeitBucket,
    RuleError, TagChange, Target, TierChange, TierLevel,
};
use scrip::rules::types::{CounterChange, Debit, Event, Participant};

/// The interface version modules are built against now.
pub const INTERFACE: &str = "scrip:rules/evaluator@0.4.0";
/// Earlier versions, which modules may still export.
const INTERFACE_0_3: &str = "scrip:rules/evaluator@0.3.0";
const INTERFACE_0_2: &str = "scrip:rules/evaluator@0.2.0";
const INTERFACE_0_1: &str = "scrip:rules/evaluator@0.1.0";

/// What one evaluation may use: [`Limits::DEFAULT`] unless the rule asks for other limits, within the
/// operator's [`Ceiling`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub fuel: u64,
    pub memory_bytes: usize,
    pub max_actions: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        fuel: 10_000_000,
        memory_bytes: 16 << 20,
        max_actions: 100,
    };

    /// Each limit, held to the ceiling's.
    fn within(self, ceiling: Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(ceiling.fuel),
            memory_bytes: self.memory_bytes.min(ceiling.memory_bytes),
            max_actions: self.max_actions.min(ceiling.max_actions),
        }
    }
}

/// What the operator allows any rule: the most each rule may ask for, and the largest component accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    pub limits: Limits,
    pub component_bytes: usize,
    /// The most memory that compiled rules, wasm modules included, may keep in a process's cache.
    pub cache_bytes: usize,
}

impl Ceiling {
    pub const DEFAULT: Ceiling = Ceiling {
        limits: Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            max_actions: 1000,
        },
        component_bytes: 2 << 20,
        cache_bytes: 256 << 20,
    };
}
const MAX_INPUT_BYTES: usize = 1 << 20;
const LOG_BYTES: usize = 4096;
const MAX_WASM_STACK: usize = 512 << 10;
/// How much of an instance's memory and tables may stay mapped when it returns to the pool.
const KEEP_RESIDENT: usize = 2 << 20;

/// What a rule sees of the event, the participant and its configuration.
pub struct Input {
    pub event_id: uuid::Uuid,
    pub program_id: uuid::Uuid,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub data: serde_json::Value,
    pub participant_id: uuid::Uuid,
    pub external_id: String,
    pub tags: Vec<String>,
    pub attributes: Vec<(String, String)>,
    pub counters: Vec<(String, String)>,
    /// Its levels in the event's program's tiers.
    pub tiers: Vec<TierLevel>,
    /// AVAILABLE balance per asset, at the asset's scale.
    pub balances: Vec<(String, String)>,
    pub config: serde_json::Value,
}

/// A participant's attributes or counters as the interface takes them: text values as they are, others as
/// JSON.
pub fn pairs(map: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect()
}

/// How an evaluation ended. Every variant carries the fuel it burned and what the guest printed.
#[derive(Debug)]
pub enum Outcome {
    Actions {
        actions: Vec<Action>,
        fuel: u64,
        logs: String,
    },
    /// Out of fuel: recorded as SKIPPED_TIMEOUT.
    Timeout { fuel: u64, logs: String },
    /// Trapped, panicked, ran out of memory, returned a rule error or invalid output: SKIPPED_ERROR.
    Failed {
        reason: String,
        fuel: u64,
        logs: String,
    },
}

impl Outcome {
    /// A failure before the guest ran: no fuel burned, nothing printed.
    fn failed(reason: String) -> Outcome {
        Outcome::Failed {
            reason,
            fuel: 0,
            logs: String::new(),
        }
    }
}

/// What a rule's store holds; private to the runtime.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl scrip::rules::types::Host for State {}
impl v0_3::scrip::rules::types::Host for State {}
impl v0_2::scrip::rules::types::Host for State {}
impl v0_1::scrip::rules::types::Host for State {}

/// The event's time, forever: the guest's wall clock.
struct FrozenClock(Duration);

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The monotonic clock's interface as wasmtime-wasi 48 links it (guests importing older 0.2 versions match it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A timer that has already fired. Time stands still for a rule, so its sleeps and timeouts are over as soon
/// as they begin: a guest cannot hold a host thread by waiting, and a waiting loop burns fuel like any other.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

/// Replaces WASI's timers, which wait on the host's real clock, with [`Elapsed`] ones.
fn freeze_timers(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    fn elapsed(
        mut store: StoreContextMut<'_, State>,
        _: (u64,),
    ) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let table = &mut store.data_mut().table;
        let timer = table.push(Elapsed)?;
        Ok((wasmtime_wasi::p2::subscribe(table, timer)?,))
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", elapsed)?;
    clock.func_wrap("subscribe-instant", elapsed)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// One evaluation's store, with its fuel set and its output captured.
struct Sandbox {
    store: Store<State>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// The rule's limits held to the operator's ceiling: what this evaluation may use.
    limits: Limits,
}

/// The event, participant and config as the interface takes them; `Err` when the event is too large.
fn arguments(input: &Input) -> Result<(Event, Participant, String), String> {
    let data = input.data.to_string();
    if data.len() > MAX_INPUT_BYTES {
        return Err("event data too large for a wasm rule".into());
    }
    let event = Event {
        id: input.event_id.to_string(),
        program_id: input.program_id.to_string(),
        timestamp: input.timestamp.to_rfc3339(),
        data,
    };
    let participant = Participant {
        id: input.participant_id.to_string(),
        external_id: input.external_id.clone(),
        tags: input.tags.clone(),
        attributes: input.attributes.clone(),
        counters: input.counters.clone(),
        balances: input.balances.clone(),
        tiers: input.tiers.clone(),
    };
    Ok((event, participant, input.config.to_string()))
}

/// A module compiled and linked against the interface version it exports, ready to instantiate.
pub enum Pre {
    Current(RulePre<State>),
    V0_3(v0_3::RulePre<State>),
    V0_2(v0_2::RulePre<State>),
    V0_1(v0_1::RulePre<State>),
}

pub type Prepared = Arc<Pre>;

impl Pre {
    /// The interface the module exports.
    pub fn interface(&self) -> &'static str {
        match self {
            Pre::Current(_) => INTERFACE,
            Pre::V0_3(_) => INTERFACE_0_3,
            Pre::V0_2(_) => INTERFACE_0_2,
            Pre::V0_1(_) => INTERFACE_0_1,
        }
    }

    fn component(&self) -> &Component {
        match self {
            Pre::Current(pre) => pre.instance_pre().component(),
            Pre::V0_3(pre) => pre.instance_pre().component(),
            Pre::V0_2(pre) => pre.instance_pre().component(),
            Pre::V0_1(pre) => pre.instance_pre().component(),
        }
    }

    fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Current(pre) => Instance::Current(pre.instantiate(store)?),
            Pre::V0_3(pre) => Instance::V0_3(pre.instantiate(store)?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate(store)?),
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
        })
    }
}

/// The event and participant as an earlier version's bindings take them: the same fields, with the levels
/// as that version gives them.
macro_rules! as_version {
    ($version:ident, $event:expr, $participant:expr, $levels:expr) => {
        (
            $version::Event {
                id: $event.id.clone(),
                program_id: $event.program_id.clone(),
                timestamp: $event.timestamp.clone(),
                data: $event.data.clone(),
            },
            $version::Participant {
                id: $participant.id.clone(),
                external_id: $participant.external_id.clone(),
                tags: $participant.tags.clone(),
                attributes: $participant.attributes.clone(),
                counters: $participant.counters.clone(),
                balances: $participant.balances.clone(),
                tiers: $levels,
            },
        )
    };
}

enum Instance {
    Current(Rule),
    V0_3(v0_3::Rule),
    V0_2(v0_2::Rule),
    V0_1(v0_1::Rule),
}

impl Instance {
    /// Calls `evaluate`; an earlier version's answer is read as the current interface's.
    fn evaluate(
        &self,
        store: &mut Store<State>,
        event: &Event,
        participant: &Participant,
        config: &str,
    ) -> wasmtime::Result<Result<Vec<Action>, RuleError>> {
        // Before 0.3.0, level key per tier key.
        let levels = || -> Vec<(String, String)> {
            participant
                .tiers
                .iter()
                .map(|t| (t.tier.clone(), t.level.clone()))
                .collect()
        };
        match self {
            Instance::Current(rule) => {
                rule.scrip_rules_evaluator()
                    .call_evaluate(store, event, participant, config)
            }
            Instance::V0_3(rule) => {
                let tiers = participant
                    .tiers
                    .iter()
                    .map(|t| v0_3::TierLevel {
                        tier: t.tier.clone(),
                        level: t.level.clone(),
                        rank: t.rank,
                        benefits: t.benefits.clone(),
                    })
                    .collect();
                let (event, participant) = as_version!(v0_3, event, participant, tiers);
                let answer = rule.scrip_rules_evaluator().call_evaluate(
                    store,
                    &event,
                    &participant,
                    config,
                )?;
                Ok(answer
                    .map(|actions| actions.into_iter().map(from_v0_3).collect())
                    .map_err(from_v0_3_error))
            }
            Instance::V0_2(rule) => {
                let (event, participant) = as_version!(v0_2, event, participant, levels());
                let answer = rule.scrip_rules_evaluator().call_evaluate(
                    store,
                    &event,
                    &participant,
                    config,
                )?;
                Ok(answer
                    .map(|actions| actions.into_iter().map(from_v0_2).collect())
                    .map_err(from_v0_2_error))
            }
            Instance::V0_1(rule) => {
                let (event, participant) = as_version!(v0_1, event, participant, levels());
                let answer = rule.scrip_rules_evaluator().call_evaluate(
                    store,
                    &event,
                    &participant,
                    config,
                )?;
                Ok(answer
                    .map(|actions| actions.into_iter().map(from_v0_1).map(from_v0_2).collect())
                    .map_err(|error| {
                        from_v0_2_error(match error {
                            v0_1::RuleError::InvalidInput(m) => v0_2::RuleError::InvalidInput(m),
                            v0_1::RuleError::Rejected(m) => v0_2::RuleError::Rejected(m),
                        })
                    }))
            }
        }
    }
}

fn from_v0_3_error(error: v0_3::RuleError) -> RuleError {
    match error {
        v0_3::RuleError::InvalidInput(m) => RuleError::InvalidInput(m),
        v0_3::RuleError::Rejected(m) => RuleError::Rejected(m),
    }
}

fn from_v0_2_error(error: v0_2::RuleError) -> RuleError {
    match error {
        v0_2::RuleError::InvalidInput(m) => RuleError::InvalidInput(m),
        v0_2::RuleError::Rejected(m) => RuleError::Rejected(m),
    }
}

/// An earlier version's action as the current interface says it: the variants both have, field for field,
/// with a target of the kinds that version knows. `$target` names the target conversion for the `$arm`s, which
/// convert the variants only some earlier versions have.
macro_rules! upgrade_action {
    ($version:ident, $action:expr, $target:ident $(, $pattern:pat => $arm:expr)* $(,)?) => {{
        use $version::Action as Old;
        let $target = |t: Option<$version::Target>| {
            t.map(|t| match t {
                $version::Target::ParticipantId(id) => Target::ParticipantId(id),
                $version::Target::ExternalId(id) => Target::ExternalId(id),
            })
        };
        let change = |b: $version::BalanceChange| BalanceChange {
            asset_id: b.asset_id,
            amount: b.amount,
            description: b.description,
            reference_id: b.reference_id,
            target: $target(b.target),
        };
        let tag = |t: $version::TagChange| TagChange {
            tag: t.tag,
            target: $target(t.target),
        };
        match $action {
            Old::Credit(c) => Action::Credit(Credit {
                asset_id: c.asset_id,
                amount: c.amount,
                description: c.description,
                target: $target(c.target),
                bucket: c.bucket.map(|b| match b {
                    $version::CreditBucket::Available => CreditBucket::Available,
                    $version::CreditBucket::Held => CreditBucket::Held,
                }),
                expires_at: c.expires_at,
                matures_at: c.matures_at,
                reference_id: c.reference_id,
            }),
            Old::Debit(d) => Action::Debit(Debit {
                asset_id: d.asset_id,
                amount: d.amount,
                description: d.description,
                allow_negative: d.allow_negative,
                target: $target(d.target),
            }),
            Old::Tag(t) => Action::Tag(tag(t)),
            Old::Untag(t) => Action::Untag(tag(t)),
            Old::Counter(c) => Action::Counter(CounterChange {
                key: c.key,
                value: c.value,
                reset_after: c.reset_after,
                target: $target(c.target),
            }),
            Old::SetAttribute(a) => Action::SetAttribute(AttributeChange {
                key: a.key,
                value: a.value,
                target: $target(a.target),
            }),
            Old::Hold(b) => Action::Hold(change(b)),
            Old::Release(b) => Action::Release(change(b)),
            Old::VoidHold(b) => Action::VoidHold(change(b)),
            Old::Forfeit(f) => Action::Forfeit(Forfeit {
                asset_id: f.asset_id,
                amount: f.amount,
                bucket: match f.bucket {
                    $version::ForfeitBucket::Available => ForfeitBucket::Available,
                    $version::ForfeitBucket::Held => ForfeitBucket::Held,
                },
                description: f.description,
                reference_id: f.reference_id,
                target: $target(f.target),
            }),
            $($pattern => $arm,)*
        }
    }};
}

/// A 0.3.0 action as the current interface says it (0.3.0's actions are a subset, field for field).
fn from_v0_3(action: v0_3::Action) -> Action {
    upgrade_action!(v0_3, action, target,
        Old::SetTier(t) => Action::SetTier(TierChange {
            tier: t.tier,
            level: t.level,
            expires_at: t.expires_at,
            target: target(t.target),
        }),
    )
}

/// A 0.2.0 action as the current interface says it (0.2.0's actions are a subset, field for field).
fn from_v0_2(action: v0_2::Action) -> Action {
    upgrade_action!(v0_2, action, target)
}

/// A 0.1.0 action as 0.2.0 says it (0.1.0's actions are a subset, field for field).
fn from_v0_1(action: v0_1::Action) -> v0_2::Action {
    use v0_1::Action as Old;
    let target = |t: Option<v0_1::Target>| {
        t.map(|t| match t {
            v0_1::Target::ParticipantId(id) => v0_2::Target::ParticipantId(id),
            v0_1::Target::ExternalId(id) => v0_2::Target::ExternalId(id),
        })
    };
    match action {
        Old::Credit(c) => v0_2::Action::Credit(v0_2::Credit {
            asset_id: c.asset_id,
            amount: c.amount,
            description: c.description,
            target: target(c.target),
            bucket: None,
            expires_at: None,
            matures_at: None,
            reference_id: None,
        }),
        Old::Debit(d) => v0_2::Action::Debit(v0_2::Debit {
            asset_id: d.asset_id,
            amount: d.amount,
            description: d.description,
            allow_negative: d.allow_negative,
            target: target(d.target),
        }),
        Old::Tag(t) => v0_2::Action::Tag(v0_2::TagChange {
            tag: t.tag,
            target: target(t.target),
        }),
        Old::Untag(t) => v0_2::Action::Untag(v0_2::TagChange {
            tag: t.tag,
            target: target(t.target),
        }),
        Old::Counter(c) => v0_2::Action::Counter(v0_2::CounterChange {
            key: c.key,
            value: c.value,
            reset_after: c.reset_after,
            target: target(c.target),
        }),
        Old::SetAttribute(a) => v0_2::Action::SetAttribute(v0_2::AttributeChange {
            key: a.key,
            value: a.value,
            target: target(a.target),
        }),
    }
}

/// The memory a prepared module's compiled code and data take.
pub fn footprint(pre: &Pre) -> usize {
    let image = pre.component().image_range();
    (image.end as usize).saturating_sub(image.start as usize)
}

pub struct Runtime {
    ceiling: Ceiling,
    engine: Engine,
    linker: Linker<State>,
    /// Prepared modules by content, while something (a cached rule, a running batch) still holds them, so
    /// rules of the same module share one; this map keeps none alive itself.
    prepared: Mutex<HashMap<String, Weak<Pre>>>,
    /// How long an evaluation may take on the wall clock, and that in epoch ticks.
    backstop: Duration,
    backstop_ticks: u64,
    ticker_stop: Arc<std::sync::atomic::AtomicBool>,
}

/// How often the epoch advances: the backstop's resolution.
const TICK: Duration = Duration::from_millis(10);
/// The backstop of the instantiation that checks a module on upload: 5 s.
const PROBE_TICKS: u64 = 500;

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Runtime {
    /// Fuel decides when a rule stops; a wall-clock backstop of 5 s only catches what fuel cannot (a host
    /// call that never returns, say), so results stay deterministic.
    pub fn new(ceiling: Ceiling) -> wasmtime::Result<Runtime> {
        Runtime::with_backstop(ceiling, Duration::from_secs(5))
    }

    pub fn with_backstop(ceiling: Ceiling, backstop: Duration) -> wasmtime::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(64)
            .total_tables(128)
            .max_memory_size(ceiling.limits.memory_bytes);
        // Returning an instance to the pool resets its memory. By default that unmaps the pages it touched,
        // and the next evaluation faults them back in: most of an evaluation's time. Where Linux can report
        // which pages were written (PAGEMAP_SCAN, 6.7+), only those are restored and all stay mapped. Without
        // it, keeping memory resident would mean clearing all of it on every reset, which is slower.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT);
        }
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        freeze_timers(&mut linker)?;
        Rule::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
        v0_3::Rule::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
        v0_2::Rule::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
        v0_1::Rule::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
        let ticker_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })?;
        Ok(Runtime {
            ceiling,
            engine,
            linker,
            prepared: Mutex::new(HashMap::new()),
            backstop,
            backstop_ticks: u64::try_from(backstop.as_millis().div_ceil(TICK.as_millis()))
                .unwrap_or(u64::MAX)
                .max(1),
            ticker_stop,
        })
    }

    pub fn ceiling(&self) -> Ceiling {
        self.ceiling
    }

    /// Compiles, links and instantiates a module once: the interface version it exports, or, for the
    /// uploader, why it is not a usable rule.
    pub fn check(&self, bytes: &[u8]) -> Result<&'static str, String> {
        self.prepare(bytes).map(|pre| pre.interface())
    }

    fn compile(&self, bytes: &[u8]) -> Result<Pre, String> {
        if bytes.len() > self.ceiling.component_bytes {
            return Err(format!(
                "the module is larger than {} bytes",
                self.ceiling.component_bytes
            ));
        }
        if !bytes.starts_with(b"\0asm") || bytes.get(4..8) != Some(&[0x0d, 0x00, 0x01, 0x00]) {
            return Err("not a WebAssembly component (build with --target wasm32-wasip2)".into());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| format!("not a valid component: {e}"))?;
        let exported: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let interface = [INTERFACE, INTERFACE_0_3, INTERFACE_0_2, INTERFACE_0_1]
            .into_iter()
            .find(|interface| exported.iter().any(|name| name == interface))
            .ok_or_else(|| {
                format!(
                    "the component exports none of {INTERFACE}, {INTERFACE_0_3}, {INTERFACE_0_2} and \
                     {INTERFACE_0_1} (built with another SDK?)"
                )
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("the component cannot be linked: {e}"))?;
        let mismatch =
            |e: wasmtime::Error| format!("the component does not match {interface}: {e}");
        let pre = match interface {
            INTERFACE => Pre::Current(RulePre::new(pre).map_err(mismatch)?),
            INTERFACE_0_3 => Pre::V0_3(v0_3::RulePre::new(pre).map_err(mismatch)?),
            INTERFACE_0_2 => Pre::V0_2(v0_2::RulePre::new(pre).map_err(mismatch)?),
            _ => Pre::V0_1(v0_1::RulePre::new(pre).map_err(mismatch)?),
        };
        // Linking checks imports; the exported function's types are only checked when instantiating, so a
        // component built against another revision of the interface is refused here, not at its first event.
        let mut sandbox = self
            .sandbox(
                uuid::Uuid::nil(),
                chrono::DateTime::UNIX_EPOCH,
                Limits::DEFAULT,
            )
            .map_err(|e| format!("cannot set up the sandbox: {e}"))?;
        // Fuel bounds the probe; a short backstop (the tests') must not refuse a module because a tick fell
        // while it was instantiated.
        sandbox.store.set_epoch_deadline(PROBE_TICKS);
        pre.instantiate(&mut sandbox.store).map_err(mismatch)?;
        Ok(pre)
    }

    /// The prepared module for `bytes`: the one in use if there is one, else compiled anew.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, String> {
        let sha = sha256(bytes);
        let in_use = self
            .prepared
            .lock()
            .ok()
            .and_then(|map| map.get(&sha).and_then(Weak::upgrade));
        if let Some(pre) = in_use {
            return Ok(pre);
        }
        let pre = Arc::new(self.compile(bytes)?);
        if let Ok(mut map) = self.prepared.lock() {
            map.retain(|_, held| held.strong_count() > 0);
            map.insert(sha, Arc::downgrade(&pre));
        }
        Ok(pre)
    }

    /// A fresh store: WASI with nothing ambient, the event's clock and seed, memory and fuel limits.
    fn sandbox(
        &self,
        event_id: uuid::Uuid,
        timestamp: chrono::DateTime<chrono::Utc>,
        limits: Limits,
    ) -> wasmtime::Result<Sandbox> {
        let stdout = MemoryOutputPipe::new(LOG_BYTES);
        let stderr = MemoryOutputPipe::new(LOG_BYTES);
        let since_epoch =
            Duration::from_micros(u64::try_from(timestamp.timestamp_micros()).unwrap_or(0));
        let seed = Sha256::digest(event_id.as_bytes()).to_vec();
        let wasi = WasiCtxBuilder::new()
            .wall_clock(FrozenClock(since_epoch))
            .monotonic_clock(FrozenClock(Duration::ZERO))
            .secure_random(wasmtime_wasi::Deterministic::new(seed.clone()))
            .insecure_random(wasmtime_wasi::Deterministic::new(seed))
            .insecure_random_seed(event_id.as_u128())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let limits = limits.within(self.ceiling.limits);
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(32)
            .tables(64)
            .memories(8)
            .build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limits: store_limits,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(limits.fuel)?;
        store.set_epoch_deadline(self.backstop_ticks);
        Ok(Sandbox {
            store,
            stdout,
            stderr,
            limits,
        })
    }

    /// Where one evaluation's time goes, for the benchmark: setting up the store, lowering the input,
    /// instantiating, the call itself, and dropping the store (which resets the instance's memory).
    pub fn phases(
        &self,
        pre: &Pre,
        input: &Input,
        limits: Limits,
    ) -> wasmtime::Result<[Duration; 5]> {
        let start = Instant::now();
        let mut sandbox = self.sandbox(input.event_id, input.timestamp, limits)?;
        let stored = Instant::now();
        let (event, participant, config) = arguments(input).map_err(wasmtime::Error::msg)?;
        let lowered = Instant::now();
        let rule = pre.instantiate(&mut sandbox.store)?;
        let instantiated = Instant::now();
        rule.evaluate(&mut sandbox.store, &event, &participant, &config)?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        let called = Instant::now();
        drop(sandbox);
        let dropped = Instant::now();
        Ok([
            stored - start,
            lowered - stored,
            instantiated - lowered,
            called - instantiated,
            dropped - called,
        ])
    }

    /// Runs the rule once on a blocking thread: guest code must not stall the async workers, and WASI's
    /// synchronous host calls (a guest printing, say) block on the Tokio runtime, which they may not do from
    /// inside it. A host panic during the call becomes a failed evaluation, not a dead worker.
    ///
    /// The epoch deadline interrupts guest code only. No host call is known to block (timers have fired
    /// already, output goes to memory), but should one, the evaluation is abandoned here when the backstop
    /// passes and the event moves on while that thread finishes.
    pub async fn run(self: &Arc<Self>, pre: Prepared, input: Input, limits: Limits) -> Outcome {
        let runtime = self.clone();
        let evaluation =
            tokio::task::spawn_blocking(move || runtime.evaluate(&pre, &input, limits));
        match tokio::time::timeout(self.backstop + TICK, evaluation).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Outcome::failed(format!("host error: {e}")),
            Err(_) => Outcome::failed(format!(
                "stopped by the wall-clock backstop after {:?}, blocked in a host call",
                self.backstop
            )),
        }
    }

    /// Runs the rule once, in a fresh store, on the calling thread.
    pub fn evaluate(&self, pre: &Pre, input: &Input, limits: Limits) -> Outcome {
        let mut sandbox = match self.sandbox(input.event_id, input.timestamp, limits) {
            Ok(sandbox) => sandbox,
            Err(err) => return Outcome::failed(format!("cannot set up the sandbox: {err}")),
        };
        let (event, participant, config) = match arguments(input) {
            Ok(arguments) => arguments,
            Err(reason) => return Outcome::failed(reason),
        };
        let store = &mut sandbox.store;
        let result = pre
            .instantiate(&mut *store)
            .and_then(|rule| rule.evaluate(&mut *store, &event, &participant, &config));
        let fuel = sandbox
            .limits
            .fuel
            .saturating_sub(sandbox.store.get_fuel().unwrap_or(0));
        let mut logs = String::from_utf8_lossy(&sandbox.stdout.contents()).into_owned();
        logs.push_str(&String::from_utf8_lossy(&sandbox.stderr.contents()));
        let max_actions = sandbox.limits.max_actions;
        let reason = match result {
            Ok(Ok(actions)) if actions.len() > max_actions => format!(
                "invalid output: {} actions, at most {max_actions} allowed",
                actions.len()
            ),
            Ok(Ok(actions)) => {
                return Outcome::Actions {
                    actions,
                    fuel,
                    logs,
                };
            }
            Ok(Err(RuleError::InvalidInput(message))) => {
                format!("rule error: invalid input: {message}")
            }
            Ok(Err(RuleError::Rejected(message))) => format!("rule error: rejected: {message}"),
            Err(err) => match err.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => return Outcome::Timeout { fuel, logs },
                Some(Trap::Interrupt) => {
                    "stopped by the wall-clock backstop before its fuel ran out".into()
                }
                Some(Trap::StackOverflow) => "trap: stack overflow".into(),
                Some(Trap::UnreachableCodeReached) => {
                    "trap: the rule panicked or aborted (out of memory included)".into()
                }
                Some(trap) => format!("trap: {trap}"),
                None => format!("error: {err:#}"),
            },
        };
        Outcome::Failed { reason, fuel, logs }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    crate::organizations::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(event_id: uuid::Uuid, attack: &str) -> Input {
        Input {
            event_id,
            program_id: uuid::Uuid::nil(),
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            data: serde_json::json!({}),
            participant_id: uuid::Uuid::nil(),
            external_id: "p".into(),
            tags: vec![],
            attributes: vec![],
            counters: vec![],
            tiers: vec![],
            balances: vec![],
            config: serde_json::json!({ "attack": attack }),
        }
    }

    fn entropy(runtime: &Runtime, pre: &Pre, event_id: uuid::Uuid) -> String {
        match runtime.evaluate(pre, &input(event_id, "entropy"), Limits::DEFAULT) {
            Outcome::Actions { actions, .. } => format!("{actions:?}"),
            other => panic!("entropy rule failed: {other:?}"),
        }
    }

    fn hostile(runtime: &Runtime) -> Prepared {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rules-examples/dist/hostile.wasm"
        );
        let bytes = std::fs::read(path).expect("rules-examples/build.sh has built the examples");
        runtime.prepare(&bytes).expect("component prepares")
    }

    /// A rule with fuel to burn for longer than the backstop allows is stopped by the clock instead.
    #[test]
    fn the_backstop_stops_what_fuel_has_not_yet() {
        let runtime =
            Runtime::with_backstop(Ceiling::DEFAULT, Duration::from_millis(1)).expect("runtime");
        let pre = hostile(&runtime);
        // Time runs fast here, so the loop cannot finish its fuel first however quick this machine is.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (engine, stopped) = (runtime.engine.clone(), stop.clone());
        let clock = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                engine.increment_epoch();
                std::thread::yield_now();
            }
        });
        let most = Ceiling::DEFAULT.limits;
        let outcome = runtime.evaluate(&pre, &input(uuid::Uuid::now_v7(), "loop"), most);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clock.join().expect("clock thread");
        match outcome {
            Outcome::Failed { reason, fuel, .. } => {
                assert!(reason.contains("backstop"), "{reason}");
                assert!(fuel < most.fuel, "stopped before its fuel ran out");
            }
            other => panic!("expected the backstop: {other:?}"),
        }
    }

    /// Preparing keeps nothing alive by itself: an upload that no rule uses leaves no memory behind, and
    /// what is still in use is shared.
    #[test]
    fn prepared_modules_live_only_while_something_holds_them() {
        let runtime = Runtime::new(Ceiling::DEFAULT).expect("runtime");
        let held = hostile(&runtime);
        assert!(footprint(&held) > 0);
        assert!(Arc::ptr_eq(&held, &hostile(&runtime)), "shared while held");
        let weak = Arc::downgrade(&held);
        drop(held);
        assert!(weak.upgrade().is_none(), "the runtime kept it alive");
    }

    /// Clock and randomness come from the event, so evaluating the same event again gives the same actions.
    #[test]
    fn evaluation_is_deterministic_per_event() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rules-examples/dist/hostile.wasm"
        );
        let bytes = std::fs::read(path).expect("rules-examples/build.sh has built the examples");
        let runtime = Runtime::new(Ceiling::DEFAULT).expect("runtime");
        let pre = runtime.prepare(&bytes).expect("component prepares");
        let (one, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let first = entropy(&runtime, &pre, one);
        assert!(
            first.contains("1700000000000000000-"),
            "the clock reads the event's time: {first}"
        );
        assert_eq!(first, entropy(&runtime, &pre, one));
        assert_ne!(
            first,
            entropy(&runtime, &pre, other),
            "randomness is seeded per event"
        );
    }
}
