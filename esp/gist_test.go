package esp_test

import "testing"

func TestGistDeleteDuringRead(t *testing.T) { deleteDuringRead(t, "gist") }
