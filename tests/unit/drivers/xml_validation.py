"""Validate domain XML with libvirt's own schema (virt-xml-validate)."""
import os
import subprocess
import tempfile


def assert_valid_domain_xml(xml):
    """Fail unless ``virt-xml-validate FILE domain`` accepts ``xml``."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    try:
        result = subprocess.run(["virt-xml-validate", f.name, "domain"],
                                capture_output=True, text=True, timeout=60,
                                check=False)
    finally:
        os.unlink(f.name)
    assert result.returncode == 0, (
        f"virt-xml-validate rejected the XML: {result.stderr}\n{xml}")
