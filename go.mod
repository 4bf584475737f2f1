module github.com/tone-ai/tone

go 1.26
