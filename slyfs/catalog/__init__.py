"""The platform's tree as folders: teams, workspaces, projects, and in each project one folder per
format the registry has for the project's type; README.txt generated from the registry."""
