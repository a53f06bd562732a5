"""Regenerate docs/verify-page.png: the page after verifying a text the service generated on the embedded model.

    python scripts/verify_page_screenshot.py [--model DIR] [--lang ko] [--out docs/verify-page.png]

Uses Debian's Chromium (/usr/bin/chromium) through Playwright and TEST ONLY signing credentials.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--lang", default="en", choices=["ko", "ja", "zh", "en"])
    parser.add_argument("--prompt", default="Write a short essay about how bicycles changed city life.")
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "verify-page.png")
    args = parser.parse_args()

    import httpx
    from playwright.sync_api import sync_playwright

    from aimark.provenance import SigningCredentials
    from aimark.provenance.test_pki import generate_test_pki
    from aimark.service.app import create_app
    from aimark.service.config import ServiceConfig
    from aimark.service.runtime import ServiceRuntime
    from tests.service.conftest import LiveServer

    work = Path(tempfile.mkdtemp(prefix="aimark-shot-"))
    pki = generate_test_pki()
    config = ServiceConfig(model=args.model, profile="all", language="en", labels=("notice", "c2pa"),
                           credentials=SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem),
                           trust_anchors=pki.trust_anchor_pem, require_api_key=False,
                           db_url=f"sqlite:///{work / 'registry.sqlite3'}")
    runtime = ServiceRuntime.start(config, home=work)
    try:
        with LiveServer(create_app(runtime)) as server:
            text = httpx.post(f"{server.url}/v1/chat/completions", timeout=600, json={
                "messages": [{"role": "user", "content": args.prompt}], "max_tokens": args.max_tokens, "seed": 3,
            }).json()["choices"][0]["message"]["content"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(server.url + "/")
                page.click(f"button[data-lang='{args.lang}']")
                page.fill("#text", text)
                page.click("#verify")
                page.wait_for_selector("#registry li[data-match]")
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
    finally:
        runtime.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
