"""What the tests share: fakes, images, servers, the app under test, response checks, the data beside the
checkout. Test modules and conftest fixtures import from here; nothing imports from a conftest or from
another test module."""
