"""A document renderer: reStructuredText to HTML with docutils."""

import os

from docutils.core import publish_string

SCALE = int(os.environ.get("PARITY_SCALE", "1"))

SECTION = """
Section {i}
===========

Some *emphasis*, **strong** text and ``literal`` code, with a link_ and a footnote [#]_.

- item one of {i}
- item two, with a longer sentence that wraps across the line
  to the next one

.. [#] A footnote for section {i}.
.. _link: https://example.invalid/{i}

A literal block::

   literal block {i}

"""


def main() -> None:
    source = "Title\n#####\n" + "".join(SECTION.format(i=i) for i in range(25 * SCALE))
    html = publish_string(
        source, writer_name="html", settings_overrides={"report_level": 5, "halt_level": 5}
    )
    print(len(html))


if __name__ == "__main__":
    main()
