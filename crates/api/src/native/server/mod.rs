//! The tenant's server API (server key), one module per resource, each with its routes and
//! its wire types: users and suspensions, OAuth clients and service accounts, teams and
//! memberships, settings and policies, webhook endpoints and their deliveries, identity providers.

mod identity_providers;
mod oauth_clients;
mod settings;
mod teams;
mod users;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    users::routes()
        .merge(oauth_clients::routes())
        .merge(teams::routes())
        .merge(settings::routes())
        .merge(webhooks::routes())
        .merge(identity_providers::routes())
}
