//! Every endpoint of the remote API, in one table: method, path, the scope it needs (`None`:
//! the dashboard's static files and the OpenAPI document, which hold no data), and what
//! answers it. docs/openapi.json documents exactly this table (a unit test compares them).

use std::{net::IpAddr, sync::Arc};

use super::{
    http::{Request, Response},
    server::Remote,
    tokens::{Grant, Scope},
};
use crate::api::feed::AlertQuery;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Index,
    Script,
    Style,
    OpenApi,
    Status,
    Metrics,
    Alerts,
    AlertCounts,
    Incidents,
    Timeline,
    Baselines,
    Profiles,
    BaselineCommand,
    Responses,
    Contain,
    Approve,
    RulesReload,
    Tokens,
    Ticket,
    Stream,
}

pub struct Route {
    pub method: &'static str,
    /// Literal segments, and `{name}` for one path segment.
    pub path: &'static str,
    pub scope: Option<Scope>,
    pub handler: Handler,
}

const fn r(
    method: &'static str,
    path: &'static str,
    scope: Option<Scope>,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        scope,
        handler,
    }
}

use Handler as H;
const READ: Option<Scope> = Some(Scope::Read);
const RESPOND: Option<Scope> = Some(Scope::Respond);
const ADMIN: Option<Scope> = Some(Scope::Admin);

pub const ROUTES: &[Route] = &[
    r("GET", "/", None, H::Index),
    r("GET", "/app.js", None, H::Script),
    r("GET", "/app.css", None, H::Style),
    r("GET", "/api/v1/openapi.json", None, H::OpenApi),
    r("GET", "/api/v1/status", READ, H::Status),
    r("GET", "/api/v1/metrics", READ, H::Metrics),
    r("GET", "/api/v1/alerts", READ, H::Alerts),
    r("GET", "/api/v1/alerts/counts", READ, H::AlertCounts),
    r("GET", "/api/v1/incidents", READ, H::Incidents),
    r("GET", "/api/v1/incidents/{id}/timeline", READ, H::Timeline),
    r("GET", "/api/v1/baselines", READ, H::Baselines),
    r("GET", "/api/v1/profiles", READ, H::Profiles),
    r(
        "POST",
        "/api/v1/baselines/command",
        ADMIN,
        H::BaselineCommand,
    ),
    r("GET", "/api/v1/responses", READ, H::Responses),
    r("POST", "/api/v1/responses", RESPOND, H::Contain),
    r("POST", "/api/v1/responses/approve", RESPOND, H::Approve),
    r("POST", "/api/v1/rules/reload", ADMIN, H::RulesReload),
    r("GET", "/api/v1/tokens", ADMIN, H::Tokens),
    r("POST", "/api/v1/stream/ticket", READ, H::Ticket),
    r("GET", "/api/v1/stream", READ, H::Stream),
];

pub const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
pub const APP_JS: &str = include_str!("../../dashboard/app.js");
pub const APP_CSS: &str = include_str!("../../dashboard/app.css");
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Longest path segment taken as a parameter.
const MAX_PARAM: usize = 128;

/// The route for a request, with its `{...}` values; `Err(404 | 405)` otherwise.
pub fn find(method: &str, path: &str) -> Result<(&'static Route, Vec<String>), u16> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut path_matched = false;
    for route in ROUTES {
        let pat: Vec<&str> = route.path.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let ok = pat.iter().zip(&segs).all(|(p, s)| {
            if p.starts_with('{') {
                let good = !s.is_empty() && s.len() <= MAX_PARAM;
                params.push((*s).to_owned());
                good
            } else {
                p == s
            }
        });
        if !ok {
            continue;
        }
        path_matched = true;
        if route.method == method {
            return Ok((route, params));
        }
    }
    Err(if path_matched { 405 } else { 404 })
}

fn parse_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, Response> {
    serde_json::from_slice(&req.body)
        .map_err(|e| Response::error(400, format!("bad request body: {e}")))
}

fn alert_query(req: &Request) -> Result<AlertQuery, Response> {
    let bad = |what: &str| Response::error(400, format!("bad {what}"));
    Ok(AlertQuery {
        severity: match req.query("severity") {
            Some(s) => Some(s.parse().map_err(|_| bad("severity"))?),
            None => None,
        },
        rule: req.query("rule").map(str::to_owned),
        before: match req.query("before") {
            Some(s) => Some(s.parse().map_err(|_| bad("before"))?),
            None => None,
        },
        limit: match req.query("limit") {
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| bad("limit (1 to 1000)"))?,
            None => 100,
        },
    })
}

/// Who the audit trail and the responder see as the actor.
pub fn actor(grant: &Grant, source: IpAddr) -> String {
    format!("api:token={}({})@{source}", grant.id, grant.name)
}

/// Answer a matched request (the stream is answered by the server: it takes the connection).
pub async fn answer(
    h: Handler,
    req: &Request,
    params: &[String],
    grant: Option<&Grant>,
    source: IpAddr,
    remote: &Arc<Remote>,
) -> Response {
    let ctx = &remote.ctx;
    match h {
        H::Index => Response::bytes(200, "text/html; charset=utf-8", INDEX_HTML),
        H::Script => Response::bytes(200, "text/javascript; charset=utf-8", APP_JS),
        H::Style => Response::bytes(200, "text/css; charset=utf-8", APP_CSS),
        H::OpenApi => Response::bytes(200, "application/json", OPENAPI),
        H::Status => Response::json(200, &(ctx.status)()),
        H::Metrics => Response::bytes(200, "text/plain; version=0.0.4", (ctx.metrics)()),
        H::Alerts => match alert_query(req) {
            Ok(q) => {
                let (alerts, next) = ctx.feed.page(&q);
                Response::json(200, &serde_json::json!({ "alerts": alerts, "next": next }))
            }
            Err(r) => r,
        },
        H::AlertCounts => Response::json(200, &ctx.feed.counts()),
        H::Incidents => Response::json(200, &(ctx.incidents)()),
        H::Timeline => {
            let id = params.first().map(String::as_str).unwrap_or_default();
            let incidents = (ctx.incidents)();
            match incidents.into_iter().find(|i| i.id.to_string() == id) {
                Some(incident) => {
                    let alerts = ctx.feed.by_ids(&incident.alert_ids);
                    Response::json(
                        200,
                        &serde_json::json!({ "incident": incident, "alerts": alerts }),
                    )
                }
                None => Response::error(404, "no such incident"),
            }
        }
        H::Baselines | H::Profiles | H::BaselineCommand => {
            use crate::baseline::{Command, Reply};
            let cmd = match h {
                H::Baselines => Command::List,
                H::Profiles => Command::ProfileStatus,
                _ => match parse_body::<Command>(req) {
                    Ok(Command::Import { .. }) => {
                        return Response::error(400, "import baselines with the CLI on the host");
                    }
                    Ok(c) => c,
                    Err(r) => return r,
                },
            };
            let changes = h == H::BaselineCommand;
            let reply = (ctx.baseline)(cmd.clone())
                .await
                .unwrap_or_else(|_| Reply::Error("the agent is shutting down".into()));
            if changes && let (Some(a), Some(g)) = (&ctx.audit, grant) {
                crate::api::server::audit_baseline(a, &cmd, &reply, &actor(g, source));
            }
            match reply {
                Reply::List(l) => Response::json(200, &l),
                Reply::Profiles(p) => Response::json(200, &p),
                Reply::Error(e) => Response::error(400, e),
                other => Response::json(200, &other),
            }
        }
        H::Responses | H::Contain | H::Approve => {
            use crate::respond::responder::{ContainReply, ContainRequest};
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Run {
                run: String,
            }
            let request = match h {
                H::Responses => ContainRequest::List,
                H::Approve => match parse_body::<Run>(req) {
                    Ok(r) => ContainRequest::Approve { run: r.run },
                    Err(r) => return r,
                },
                _ => match parse_body::<ContainRequest>(req) {
                    Ok(c) => c,
                    Err(r) => return r,
                },
            };
            let who = grant.map_or_else(|| format!("api@{source}"), |g| actor(g, source));
            let reply = (ctx.contain)(request, who).await.unwrap_or_else(|_| {
                ContainReply::Failed("the responder is busy or shutting down; retry".into())
            });
            match reply {
                ContainReply::Listing(l) => Response::json(200, &l),
                ContainReply::Refused(_) => Response::json(409, &reply),
                ContainReply::Failed(_) => Response::json(500, &reply),
                done => Response::json(200, &done),
            }
        }
        H::RulesReload => {
            (ctx.reload_rules)();
            Response::json(202, &serde_json::json!({ "reload": "requested" }))
        }
        H::Tokens => {
            let now = crate::clock::Clock::unix_now();
            let list = ctx
                .tokens
                .lock()
                .map(|t| t.list(false, now))
                .unwrap_or_default();
            Response::json(200, &list)
        }
        H::Ticket => match grant {
            Some(g) => Response::json(
                200,
                &serde_json::json!({
                    "ticket": remote.ticket(g.clone()),
                    "expires_in_secs": super::server::TICKET_SECS,
                }),
            ),
            None => Response::error(401, "a token is required"),
        },
        H::Stream => Response::error(426, "a WebSocket upgrade is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_parameters_and_methods() {
        let (r, p) = find("GET", "/api/v1/incidents/abc/timeline").unwrap();
        assert_eq!((r.handler, p), (H::Timeline, vec!["abc".to_owned()]));
        assert_eq!(find("DELETE", "/api/v1/status").err(), Some(405));
        assert_eq!(find("GET", "/api/v1/nope").err(), Some(404));
        assert_eq!(find("GET", "/api/v1/incidents//timeline").err(), Some(404));
        assert_eq!(find("GET", "/api/v1/status/").err(), Some(404));
        let long = format!("/api/v1/incidents/{}/timeline", "x".repeat(500));
        assert_eq!(find("GET", &long).err(), Some(404));
    }

    /// docs/openapi.json lists exactly the routes above, with their methods and scopes.
    #[test]
    fn openapi_document_matches_the_route_table() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                if method == "parameters" {
                    continue;
                }
                let scope = op["x-scope"].as_str().unwrap_or("none").to_owned();
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path}: summary"
                );
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: responses"
                );
                documented.insert((method.to_uppercase(), path.clone(), scope));
            }
        }
        let coded: std::collections::BTreeSet<_> = ROUTES
            .iter()
            .map(|r| {
                (
                    r.method.to_owned(),
                    r.path.to_owned(),
                    r.scope.map_or("none", Scope::name).to_owned(),
                )
            })
            .collect();
        let missing: Vec<_> = coded.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&coded).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "undocumented: {missing:?}; documented but not served: {extra:?}"
        );
    }

    #[test]
    fn alert_queries_are_checked() {
        let q = |s: &str| {
            let (req, _, _) =
                super::super::http::parse_head(format!("GET /x?{s} HTTP/1.1\r\n\r\n").as_bytes())
                    .unwrap()
                    .unwrap();
            alert_query(&req).map_err(|r| r.status)
        };
        assert_eq!(q("").unwrap().limit, 100);
        assert_eq!(q("limit=0").err(), Some(400));
        assert_eq!(q("limit=1001").err(), Some(400));
        assert_eq!(q("severity=bogus").err(), Some(400));
        assert_eq!(q("before=-1").err(), Some(400));
        let ok = q("severity=high&rule=a.*&before=7&limit=3").unwrap();
        assert_eq!(
            (ok.before, ok.limit, ok.rule.as_deref()),
            (Some(7), 3, Some("a.*"))
        );
    }
}
