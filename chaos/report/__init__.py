"""Reporting: journal, terminal summary (Allure and HTML come with the reporting issue)."""
