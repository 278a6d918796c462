//! Operations beside the API's requests: the schema's migration (run by the migrate function, as
//! CloudFormation's custom resource or directly) and the database's health check and scheduled
//! maintenance (run by the health function). Each is a job of its own, so each has a module.

pub mod custom_resource;
pub mod maintenance;
pub mod migration;
pub mod store;
