package heartbeat

import "strings"

// Client is what a User-Agent says about the sender.
type Client struct {
	Editor          string
	Plugin          string
	OperatingSystem string
}

// ParseUserAgent reads wakatime-cli's User-Agent:
//
//	wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0
//
// Known editors and systems get WakaTime's display names ("VS Code",
// "Mac"); others keep the name the client sent. A User-Agent without the
// "(platform)" part yields an empty Client rather than a guess.
func ParseUserAgent(ua string) Client {
	var c Client
	open, close := strings.IndexByte(ua, '('), strings.IndexByte(ua, ')')
	if open < 0 || close < open {
		return c
	}
	platform := ua[open+1 : close]
	osName, _, _ := strings.Cut(platform, "-")
	c.OperatingSystem = osNames[strings.ToLower(osName)]
	if c.OperatingSystem == "" && osName != "" {
		c.OperatingSystem = osName
	}
	rest := strings.Fields(ua[close+1:])
	// rest: [go1.26.8 editor/ver plugin/ver]; older clients omit the Go version.
	if len(rest) > 0 && strings.HasPrefix(rest[0], "go") && !strings.Contains(rest[0], "/") {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		name, _, _ := strings.Cut(rest[0], "/")
		c.Editor = editorName(name)
	}
	if len(rest) > 1 {
		c.Plugin = rest[len(rest)-1]
	}
	return c
}

var osNames = map[string]string{
	"linux": "Linux", "darwin": "Mac", "windows": "Windows", "freebsd": "FreeBSD",
	"openbsd": "OpenBSD", "netbsd": "NetBSD", "android": "Android", "ios": "iOS",
}

var editorNames = map[string]string{
	"vscode": "VS Code", "vim": "Vim", "neovim": "Neovim", "nvim": "Neovim",
	"emacs": "Emacs", "sublime_text": "Sublime Text", "sublime": "Sublime Text",
	"intellij": "IntelliJ IDEA", "idea": "IntelliJ IDEA", "pycharm": "PyCharm",
	"goland": "GoLand", "webstorm": "WebStorm", "phpstorm": "PhpStorm",
	"rider": "Rider", "clion": "CLion", "rubymine": "RubyMine",
	"androidstudio": "Android Studio", "xcode": "Xcode", "zed": "Zed",
	"cursor": "Cursor", "helix": "Helix", "jupyter": "Jupyter", "chrome": "Chrome",
	"firefox": "Firefox", "terminal": "Terminal", "unknown": "Unknown",
}

func editorName(raw string) string {
	if n, ok := editorNames[strings.ToLower(raw)]; ok {
		return n
	}
	return raw
}
