//! The operator console in a real headless Chromium, driven over WebDriver (chromedriver):
//! it lists a dead delivery, shows its attempts, and its Replay button makes the delivery
//! pending again in the database.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (apt-get install chromium chromium-driver)");
    (Driver(child), port)
}

async fn browser(port: u16) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1400,900"]
        }),
    );
    wait_until(
        "Chromium to start through chromedriver",
        Duration::from_secs(20),
        async || {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        },
    )
    .await
}

/// Opens the console and connects with `token`.
/// The visible text of the element `at`.
async fn text_of(c: &fantoccini::Client, at: Locator<'_>) -> String {
    c.find(at).await.unwrap().text().await.unwrap()
}

/// Clicks the element `at`.
async fn click(c: &fantoccini::Client, at: Locator<'_>) {
    c.find(at).await.unwrap().click().await.unwrap();
}

/// The element `at`, once it appears (within 10 s).
async fn wait_for(
    c: &fantoccini::Client,
    at: Locator<'_>,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(at)
        .await
}

async fn sign_in(c: &fantoccini::Client, console: &str, token: &str) {
    c.goto(console).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(c, Locator::Id("use-token")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_a_dead_delivery_shows_its_attempts_and_replays_it() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500).with_body("partner says: database locked"));
    let partner = app.create_partner("Acme Bank").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST", "max_attempts": 2}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 9}))
        .await;
    let id = n["deliveries"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_state(&id, "dead", Duration::from_secs(10))
        .await;

    let (_driver, port) = start_chromedriver();
    let c = browser(port).await;
    sign_in(&c, &app.url("/console"), &app.token).await;

    let row = wait_for(&c, Locator::Css(&format!("tr[data-id='{id}']")))
        .await
        .expect("the dead delivery is listed");
    assert!(row.text().await.unwrap().contains("dead"));
    row.click().await.unwrap();
    let attempts = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("attempts"))
        .await
        .unwrap();
    let text = attempts.text().await.unwrap();
    assert!(
        text.contains("500") && text.contains("partner says: database locked"),
        "{text}"
    );
    assert!(text.contains("http 500"), "{text}");
    // The endpoint health table shows the dead delivery too.
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//tbody[@id='endpoints']/tr[contains(., 'Acme Bank')]",
        ))
        .await
        .unwrap();

    if let Ok(path) = std::env::var("CALLBACKD_CONSOLE_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }

    rx.always(Reply::status(200));
    click(&c, Locator::Id("replay")).await;
    let state = wait_until(
        "the Replay click to reach the database",
        Duration::from_secs(10),
        async || {
            let (state, series): (String, i32) =
                sqlx::query_as("SELECT state, series FROM deliveries WHERE id = $1::uuid")
                    .bind(&id)
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            if series == 2 {
                Ok(state)
            } else {
                Err((state, series))
            }
        },
    )
    .await;
    assert!(state == "pending" || state == "delivered", "{state}");
    app.wait_for_state(&id, "delivered", Duration::from_secs(10))
        .await;
    c.close().await.unwrap();
}

/// A partner token: the console shows that partner's deliveries and endpoints only (the
/// partner list answers 403 to it), and its "Send test" button sends a test callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_partner_token_the_console_shows_only_that_partners_view() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let mut deliveries = Vec::new();
    let mut partners = Vec::new();
    for name in ["Acme Bank", "Other Bank"] {
        let p = app.create_partner(name).await;
        app.create_endpoint(
            p,
            json!({"environment": "homologation", "url": format!("{}/{}", rx.base, name.len()),
                   "method": "POST"}),
        )
        .await;
        let n = app
            .enqueue(json!({"partner_id": p, "environment": "homologation",
                            "event_type": "proposal.status",
                            "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 1}))
            .await;
        deliveries.push(n["deliveries"][0]["id"].as_str().unwrap().to_string());
        partners.push(p);
    }
    for d in &deliveries {
        app.wait_for_state(d, "delivered", Duration::from_secs(10))
            .await;
    }
    let r = app
        .post(&format!("/v1/partners/{}/tokens", partners[0]), &json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let token = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let (_driver, port) = start_chromedriver();
    let c = browser(port).await;
    sign_in(&c, &app.url("/console"), &token).await;
    wait_for(
        &c,
        Locator::Css(&format!("tr[data-id='{}']", deliveries[0])),
    )
    .await
    .expect("the partner's own delivery is listed");
    let endpoint = wait_for(
        &c,
        Locator::XPath("//tbody[@id='endpoints']/tr[contains(., 'Acme Bank')]"),
    )
    .await
    .expect("the partner's own endpoint is listed");
    let who = text_of(&c, Locator::Id("who")).await;
    assert!(
        who.contains("partner") && who.contains("Acme Bank"),
        "{who}"
    );
    let page = text_of(&c, Locator::Css("main")).await;
    assert!(!page.contains("Other Bank"), "{page}");
    assert!(
        c.find(Locator::Css(&format!("tr[data-id='{}']", deliveries[1])))
            .await
            .is_err(),
        "another partner's delivery is not listed"
    );

    let before = rx.requests().len();
    endpoint
        .find(Locator::Css("button.test-endpoint"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let got = rx.wait_for(before + 1, Duration::from_secs(10)).await;
    assert_eq!(got[before].header("x-callback-test"), Some("true"));

    // The language follows the browser's until the partner picks one.
    let langs = c
        .execute(
            "return [navigator.language, document.documentElement.lang];",
            vec![],
        )
        .await
        .unwrap();
    let expected = if langs[0].as_str().unwrap().starts_with("pt") {
        "pt-BR"
    } else {
        "en"
    };
    assert_eq!(langs[1], expected, "{langs}");

    // Switched to Portuguese: the page is in Portuguese, and a failed test shows what the
    // partner's server answered and the Portuguese hint for its error kind.
    c.find(Locator::Id("lang"))
        .await
        .unwrap()
        .select_by_value("pt")
        .await
        .unwrap();
    let button = wait_for(
        &c,
        Locator::XPath(
            "//tbody[@id='endpoints']/tr[contains(., 'Acme Bank')]//button[.='Enviar teste']",
        ),
    )
    .await
    .expect("the endpoints are listed again, in Portuguese");
    let heading = text_of(&c, Locator::Css("h2[data-i18n='deliveries']")).await;
    assert_eq!(heading, "Entregas");
    rx.script([Reply::status(503).with_body("em manutenção")]);
    button.click().await.unwrap();
    let hint = wait_for(&c, Locator::Css("tbody#endpoints .hint"))
        .await
        .expect("the failed test shows its hint");
    assert_eq!(
        hint.text().await.unwrap(),
        format!(
            "http_5xx: {}",
            callbackd::model::hints::hint("http_5xx", callbackd::model::hints::Lang::Pt).unwrap()
        )
    );
    let answer = c
        .find(Locator::XPath(
            "//tbody[@id='endpoints']//pre[contains(., 'em manutenção')]",
        ))
        .await;
    assert!(answer.is_ok(), "the head of the answer is shown");
    c.close().await.unwrap();
}

/// The overview: attempts per minute by outcome as bars, success rate and latency per
/// endpoint under the partner's name, the oldest due wait; a delivery's partner and endpoint
/// by name (the id on hover); and "Replay all matching" of a filter, after a confirmation that
/// shows how many, replays exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_charts_names_and_bulk_replay_of_the_filter() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    // Two deliveries, two attempts each: then the endpoint is back (the default answer, 200).
    rx.script_for("/down", std::iter::repeat_n(Reply::status(503), 4));
    let acme = app.create_partner("Acme Bank").await;
    app.create_endpoint(
        acme,
        json!({"environment": "production", "url": format!("{}/down", rx.base), "method": "POST", "max_attempts": 2}),
    )
    .await;
    let other = app.create_partner("Other Bank").await;
    app.create_endpoint(
        other,
        json!({"environment": "production", "url": format!("{}/up", rx.base), "method": "POST"}),
    )
    .await;
    let mut dead = Vec::new();
    for (partner, status) in [(acme, 9), (acme, 10), (other, 9)] {
        let n = app
            .enqueue(json!({"partner_id": partner, "environment": "production", "event_type": "proposal.status",
                            "proposal": uuid::Uuid::new_v4(), "status": status}))
            .await;
        let id = n["deliveries"][0]["id"].as_str().unwrap().to_string();
        let end = if partner == acme { "dead" } else { "delivered" };
        app.wait_for_state(&id, end, Duration::from_secs(10)).await;
        if partner == acme {
            dead.push(id);
        }
    }

    let (_driver, port) = start_chromedriver();
    let c = browser(port).await;
    sign_in(&c, &app.url("/console"), &app.token).await;

    // Bars of each outcome in the chart, and the endpoints by partner name.
    for outcome in ["delivered", "failed_attempt", "dead"] {
        c.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(&format!("#timeline-chart rect.bar-{outcome}")))
            .await
            .unwrap_or_else(|_| panic!("a {outcome} bar is drawn"));
    }
    let stats = text_of(&c, Locator::Id("endpoint-stats")).await;
    assert!(
        stats.contains("Acme Bank") && stats.contains("0 %"),
        "{stats}"
    );
    assert!(
        stats.contains("Other Bank") && stats.contains("100 %"),
        "{stats}"
    );
    let oldest = text_of(&c, Locator::Id("oldest-age")).await;
    assert_eq!(oldest, "nothing waiting");
    if let Ok(dir) = std::env::var("CALLBACKD_CONSOLE_SCREENSHOT_DIR") {
        std::fs::write(
            format!("{dir}/console-overview.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
    }

    // A delivery's partner and endpoint by name, with the id on hover.
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("tr[data-id='{}']", dead[0])))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let partner = wait_for(
        &c,
        Locator::Css(&format!("#detail dd[data-partner='{acme}'].named")),
    )
    .await
    .expect("the partner is shown by name");
    assert_eq!(partner.text().await.unwrap(), "Acme Bank");
    assert!(
        partner
            .attr("title")
            .await
            .unwrap()
            .unwrap()
            .contains(&acme.to_string())
    );

    // Filter on Acme's dead deliveries; the confirmation names the count; accept.
    let filters = c.find(Locator::Id("filters")).await.unwrap();
    filters
        .find(Locator::Css("select[name='state']"))
        .await
        .unwrap()
        .select_by_label("dead")
        .await
        .unwrap();
    filters
        .find(Locator::Css("input[name='partner_id']"))
        .await
        .unwrap()
        .send_keys(&acme.to_string())
        .await
        .unwrap();
    click(&c, Locator::Id("search")).await;
    click(&c, Locator::Id("bulk-replay")).await;
    let text = wait_until("the confirmation", Duration::from_secs(10), async || {
        c.get_alert_text().await
    })
    .await;
    assert!(text.contains("Replay 2 dead deliveries"), "{text}");
    c.accept_alert().await.unwrap();
    for id in &dead {
        app.wait_for_state(id, "delivered", Duration::from_secs(10))
            .await;
    }
    let series: Vec<i32> = sqlx::query_scalar("SELECT series FROM deliveries ORDER BY series")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        series,
        vec![1, 2, 2],
        "only the two filtered deliveries were replayed"
    );
    c.close().await.unwrap();
}
