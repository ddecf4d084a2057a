"""Kafka security settings pass through configuration to both kinds of client."""
import faust
import pytest

from streams.config import Settings, faust_credentials


def test_sasl_over_ssl_reaches_confluent_kafka_and_faust(monkeypatch, tmp_path):
    monkeypatch.setenv("Q2C_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("Q2C_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("Q2C_KAFKA_SASL_USERNAME", "sync")
    monkeypatch.setenv("Q2C_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("Q2C_KAFKA_BOOTSTRAP", "broker-1:9094")
    settings = Settings(home=tmp_path)
    assert settings.kafka_client_config() == {
        "bootstrap.servers": "broker-1:9094", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "sync", "sasl.password": "s3cret",
    }
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, str(credentials.mechanism.value)) == ("sync", "s3cret", "SCRAM-SHA-512")
    assert credentials.ssl_context is not None


def test_plaintext_needs_no_credentials_and_nonsense_is_refused(tmp_path):
    assert faust_credentials(Settings(home=tmp_path)) is None
    with pytest.raises(ValueError, match="unsupported"):
        faust_credentials(Settings(home=tmp_path, kafka_security_protocol="CARRIER_PIGEON"))


def test_secrets_are_masked_wherever_settings_are_printed(tmp_path):
    settings = Settings(home=tmp_path, pg_password="hunter2", kafka_sasl_password="s3cret")
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in text and "s3cret" not in text
    assert "hunter2" in settings.dsn("crm")  # and still reach the clients that need them
