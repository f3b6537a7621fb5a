package heartbeat_test

import (
	"testing"

	"heartlog/heartbeat"
)

func TestParseUserAgent(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want heartbeat.Client
	}{
		{"fixture: VS Code on Linux", uaVSCode,
			heartbeat.Client{Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0", OperatingSystem: "Linux"}},
		{"fixture: Vim on Linux", uaVim,
			heartbeat.Client{Editor: "Vim", Plugin: "vim-wakatime/11.0.0", OperatingSystem: "Linux"}},
		{"fixture: CLI without a plugin", uaUnknown,
			heartbeat.Client{Editor: "Unknown", OperatingSystem: "Linux"}},
		{"darwin is Mac", "wakatime/v1.90.0 (darwin-23.4.0-arm64) go1.26.8 neovim/0.9.5 vim-wakatime/11.0.0",
			heartbeat.Client{Editor: "Neovim", Plugin: "vim-wakatime/11.0.0", OperatingSystem: "Mac"}},
		{"windows is Windows", "wakatime/v1.90.0 (windows-10.0.22631-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0",
			heartbeat.Client{Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0", OperatingSystem: "Windows"}},
		{"editor name in another case", "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 GoLand/2024.1 GoLand-wakatime/15.0.0",
			heartbeat.Client{Editor: "GoLand", Plugin: "GoLand-wakatime/15.0.0", OperatingSystem: "Linux"}},
		{"older client without Go version", "wakatime/v1.18.0 (linux-5.15.0-amd64) vscode/1.60.0 vscode-wakatime/17.0.0",
			heartbeat.Client{Editor: "VS Code", Plugin: "vscode-wakatime/17.0.0", OperatingSystem: "Linux"}},
		{"unknown editor kept by name", "wakatime/v1.90.0 (freebsd-14.0-amd64) go1.26.8 kakoune/2024.05 kak-wakatime/1.0.0",
			heartbeat.Client{Editor: "kakoune", Plugin: "kak-wakatime/1.0.0", OperatingSystem: "FreeBSD"}},
		{"platform only", "wakatime/v1.90.0 (linux-6.1.0-amd64)",
			heartbeat.Client{OperatingSystem: "Linux"}},

		{"empty", "", heartbeat.Client{}},
		{"blank", "   ", heartbeat.Client{}},
		{"no platform", "curl/8.5.0", heartbeat.Client{}},
		{"empty platform", "wakatime/v1.90.0 ()", heartbeat.Client{}},
		{"unclosed platform", "wakatime/v1.90.0 (linux-6.1.0-amd64 go1.26.8 vim/9.0", heartbeat.Client{}},
		{"parentheses reversed", "wakatime/v1.90.0 )linux( vim/9.0", heartbeat.Client{}},
		{"only parentheses", "((((", heartbeat.Client{}},
		{"binary garbage", "\x00\xff\xfe(", heartbeat.Client{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := heartbeat.ParseUserAgent(tt.ua); got != tt.want {
				t.Errorf("ParseUserAgent(%q)\n got %+v\nwant %+v", tt.ua, got, tt.want)
			}
		})
	}
}

// The fixtures' User-Agent headers, read from the recorded requests.
func TestParseUserAgentOfFixtureRequests(t *testing.T) {
	want := map[string]heartbeat.Client{
		"bulk-single.http":       {Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0", OperatingSystem: "Linux"},
		"bulk-dependencies.http": {Editor: "Unknown", OperatingSystem: "Linux"},
		"bulk-offline-sync.http": {Editor: "Vim", Plugin: "vim-wakatime/11.0.0", OperatingSystem: "Linux"},
	}
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			ua := loadFixture(t, name).header.Get("User-Agent")
			if got := heartbeat.ParseUserAgent(ua); got != want[name] {
				t.Errorf("ParseUserAgent(%q)\n got %+v\nwant %+v", ua, got, want[name])
			}
		})
	}
}
