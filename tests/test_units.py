from daemon.units import human_bytes, human_rate


def test_human_bytes_and_rate():
    assert human_bytes(999) == "999 B"
    assert human_bytes(41_200) == "41.2 KB"
    assert human_bytes(3.1e9) == "3.1 GB"
    assert human_bytes(2.5e15) == "2500.0 TB"
    assert human_rate(3.1e9) == "3.1 GB/s"
