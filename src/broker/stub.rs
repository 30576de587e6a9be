// TEMPORARY STUB
use std::path::Path;
pub struct P; pub struct C;
#[async_trait::async_trait] impl crate::broker::Publisher for P { async fn declare_exchange(&mut self, _n: &str) -> Result<(), crate::broker::BrokerError> { todo!() } async fn publish(&mut self, _m: &[crate::broker::Outgoing]) -> Result<(), crate::broker::BrokerError> { todo!() } }
#[async_trait::async_trait] impl crate::broker::Consumer for C { async fn declare_queue(&mut self, _s: &crate::broker::QueueSpec) -> Result<(), crate::broker::BrokerError> { todo!() } async fn get(&mut self, _m: usize, _w: std::time::Duration) -> Result<Vec<crate::broker::Delivery>, crate::broker::BrokerError> { todo!() } async fn ack(&mut self, _i: &[u64]) -> Result<(), crate::broker::BrokerError> { todo!() } async fn requeue(&mut self, _i: &[u64]) -> Result<(), crate::broker::BrokerError> { todo!() } async fn queue_depth(&mut self) -> Result<Option<u64>, crate::broker::BrokerError> { todo!() } }
pub fn open_publisher(_p: &Path) -> Result<P, crate::broker::BrokerError> { todo!() }
pub fn open_consumer(_p: &Path, _q: &str) -> Result<C, crate::broker::BrokerError> { todo!() }
pub fn queue_stats(_p: &Path, _q: &str) -> Option<(u64, u64)> { todo!() }
pub fn delete_queue(_p: &Path, _q: &str) -> anyhow::Result<()> { todo!() }
