"""The widget's title and colour from settings (RAG_WIDGET_TITLE, RAG_WIDGET_COLOR), in-process
(plumbing; the widget itself is in a real Chromium in test_browser*.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rag.errors import SettingsError
from rag.settings import Settings
from tests.test_apidocs import _client
from ui.page import contrast_with_white, widget_css


def test_the_title_and_colour_reach_the_widget():
    client, _ = _client(widget_title="Ask the <Intranet> archive", widget_color="#1d4ed8")
    config = client.get("/config").text
    assert "Ask the &lt;Intranet&gt; archive" in config  # escaped, as all text
    assert "--button-primary-background-fill: #1d4ed8" in config


def test_a_colour_white_text_cannot_be_read_on_is_refused_with_the_fix():
    assert round(contrast_with_white("#b93d0a"), 1) == 5.6  # the page's own Ask button
    assert round(contrast_with_white("#f97316"), 1) == 2.8  # Gradio's default orange
    with pytest.raises(SettingsError, match=r"contrast of only 2\.8:1.*darker"):
        widget_css(Settings(widget_color="#f97316"))
    with pytest.raises(ValidationError):
        Settings(widget_color="blue")
    assert widget_css(Settings()) == ""
